"""The commit log: an append-only file where a live micro-batch commits in about a millisecond.

A DuckDB transaction costs 10+ ms of CPU whatever its size (a handful of statements, each
with fixed overhead), far above a 5 ms frame-to-commit budget. So in live mode a batch is
committed by appending it here — framed with its length and CRC, in order — and the warm
store is materialized from the log in the background, many batches per DuckDB transaction.

Every append is written (os.write) before it returns, so an acknowledged commit survives
kill -9 in every durability mode: it is in the OS page cache, which outlives the process.
What survives power loss depends on when the page cache reaches the disk (`Durability`):
- "group": fdatasync before the append returns: every acknowledged commit survives;
- "timer": fdatasync every `fsync_interval_ms` while there are unsynced appends, and at
  close: up to that interval's commits can be lost;
- "never": the OS writes back when it likes (Linux: dirty pages older than ~30 s).
A commit group is one append: the live consumer gathers everything that queued up while the
previous commit ran into one batch, so one write and at most one fdatasync per group.

Each entry carries the batch's sequence number, and every DuckDB transaction records the
highest one it holds, so recovery applies exactly the entries the warm store lacks: nothing
lost, nothing applied twice. A torn tail (a crash mid-append) fails its CRC and is cut off;
that batch was never acknowledged.
"""

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec
import pyarrow as pa

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.model.records import Alert, Candle, DeadLetter, MarketSnapshot, Position, Quote
from marketpipe.model.schemas import TRADE_SCHEMA

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")  # payload length, CRC-32 of the payload

# When an append reaches the disk (see the module docstring for what each survives).
Durability = Literal["group", "timer", "never"]
DURABILITIES: tuple[Durability, ...] = ("group", "timer", "never")


class _Entry(msgspec.Struct, array_like=True):
    seq: int
    trades: bytes  # Arrow IPC stream (b"" when empty)
    late_trades: bytes
    candles: list[Candle]
    alerts: list[Alert]
    quotes: list[Quote]
    positions: list[Position]
    dead_letters: list[DeadLetter]
    duplicates: int
    # Last, with a default: a log written before snapshots existed still reads.
    snapshots: list[MarketSnapshot] = []


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Entry)


def _to_ipc(table: pa.Table) -> bytes:
    if not table.num_rows:
        return b""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _from_ipc(data: bytes) -> pa.Table:
    if not data:
        return TRADE_SCHEMA.empty_table()
    return pa.ipc.open_stream(data).read_all()


def encode(seq: int, batch: CommitBatch) -> bytes:
    """One framed log entry."""
    payload = _encoder.encode(
        _Entry(
            seq,
            _to_ipc(batch.trades),
            _to_ipc(batch.late_trades),
            batch.candles,
            batch.alerts,
            batch.quotes,
            batch.positions,
            batch.dead_letters,
            batch.duplicates,
            batch.snapshots,
        )
    )
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> tuple[int, CommitBatch]:
    e = _decoder.decode(payload)
    batch = CommitBatch(
        trades=_from_ipc(e.trades), late_trades=_from_ipc(e.late_trades), candles=e.candles,
        alerts=e.alerts, quotes=e.quotes, positions=e.positions, dead_letters=e.dead_letters,
        duplicates=e.duplicates, snapshots=e.snapshots,
    )  # fmt: skip
    return e.seq, batch


class CommitLog:
    """The log file of one data dir. Appends are not thread-safe (the store serializes them);
    the "timer" mode's sync thread only ever calls `sync`, which is."""

    def __init__(
        self, path: Path, *, durability: Durability = "group", fsync_interval_ms: int = 100
    ) -> None:
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be one of {DURABILITIES}, not {durability!r}")
        if fsync_interval_ms <= 0:
            raise ValueError(f"fsync_interval_ms must be positive, not {fsync_interval_ms}")
        self.path = path
        self.durability = durability
        self.fsync_interval_s = fsync_interval_ms / 1000
        self._fd: int | None = None
        self._fd_lock = threading.Lock()  # `sync` on the timer thread vs. open and close
        self._dirty = False  # appended since the last fdatasync
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.sync_error: OSError | None = None  # the timer's, raised by the next append

    def entries(self) -> Iterator[tuple[int, CommitBatch]]:
        """Every intact entry in order; a torn or corrupt tail is cut off the file."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            payload = data[start : start + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            try:
                entry = _decode(payload)
            except (msgspec.DecodeError, pa.ArrowException):
                break
            yield entry
            offset = start + length
        if offset < len(data):
            # Only ever the tail of an interrupted append: it was never acknowledged.
            with self.path.open("r+b") as handle:
                handle.truncate(offset)

    def append(self, seq: int, batch: CommitBatch) -> None:
        frame = encode(seq, batch)
        try:
            if self.sync_error is not None:
                raise self.sync_error
            fd = self._fd if self._fd is not None else self._open()
            written = os.write(fd, frame)
            if written != len(frame):
                raise OSError(f"short write ({written} of {len(frame)} bytes)")
            if self.durability == "group":
                os.fdatasync(fd)
            else:
                self._dirty = True
        except OSError as exc:
            raise StorageError(f"commit log append to {self.path} failed: {exc}") from exc

    def sync(self) -> bool:
        """fdatasync what was appended since the last sync; False (no call) when nothing was.
        The "timer" mode's thread calls it every interval, and `close` once more."""
        with self._fd_lock:
            if not self._dirty or self._fd is None:
                return False
            self._dirty = False  # first: an append during the fdatasync marks it again
            os.fdatasync(self._fd)
            return True

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._fd_lock:
            fd = self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if self.durability == "timer" and self._timer is None:
            self._stop.clear()
            self._timer = threading.Thread(
                target=self._sync_every_interval, name="commit-log-fsync", daemon=True
            )
            self._timer.start()
        return fd

    def _sync_every_interval(self) -> None:
        while not self._stop.wait(self.fsync_interval_s):
            try:
                self.sync()
            except OSError as exc:  # the next append fails with it: durability is gone
                log.exception("commit log fdatasync failed")
                self.sync_error = exc
                return

    def size(self) -> int:
        return os.fstat(self._fd).st_size if self._fd is not None else 0

    def reset(self) -> None:
        """Empty the log: call only when the warm store holds every entry."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        elif self.path.exists():
            self.path.write_bytes(b"")

    def close(self) -> None:
        """Stop the timer, fdatasync what it has not yet (timer mode), close the file."""
        if self._timer is not None:
            self._stop.set()
            self._timer.join()
            self._timer = None
        if self.durability == "timer":
            self.sync()
        with self._fd_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._dirty = False
