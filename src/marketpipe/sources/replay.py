"""Replay recorded data through the same pipeline code as live.

Formats, detected from content:
- `<recv_ns> <json>` recordings of Binance combined-stream frames (plain or `.gz`);
- our own capture JSONL: one trade object per line, as `marketpipe query trades --format jsonl`;
- Binance public-dump trade CSVs (`BTCUSDT-trades-2024-08-09.csv` or `.zip`).

Trade and bookTicker frames take a compiled path when the Rust extension is loaded
(`sources/replay_native.py`, docs/native.md); without it, trade frames in Binance's canonical
key order take a vectorized one (one polars regex over the block). Either takes only frames
the typed frame parser would read alike; anything else goes through that parser, and what
fails there is dead-lettered, never fatal. Both paths give the same records, dead letters and
skips (tests/sources/test_replay_native.py); trades of the fast path come first in a chunk.

A file that breaks part way (a `.gz` cut short, corrupt compressed data) keeps every whole
line before the break: the break itself becomes a dead letter and the chunk's `broken`
message, which names the file, the line and the byte.
"""

import gzip
import io
import logging
import queue
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Literal, TypeVar

import msgspec
import polars as pl
import pyarrow as pa

from marketpipe.model.errors import FrameError, SourceError
from marketpipe.model.records import DeadLetter, Quote, Trade
from marketpipe.model.schemas import QUOTE_SCHEMA, TRADE_INT_SCHEMA, TRADE_SCHEMA, to_table
from marketpipe.model.symbols import SymbolMap
from marketpipe.observability.native import extension
from marketpipe.sources.binance.frames import EXCHANGE, parse_frame
from marketpipe.sources.replay_native import decode_block

log = logging.getLogger(__name__)

Format = Literal["recv", "jsonl", "csv"]
BLOCK_BYTES = 32 * 1024 * 1024
# Reads are read1() calls of at most this: a decompressor that fails loses none of the data
# it already returned (one read(n) call would lose everything it gathered before the error).
READ_BYTES = 1024 * 1024
# What a damaged file raises part way: gzip cut short (EOFError), a bad gzip header or CRC
# (BadGzipFile, an OSError), corrupt deflate data (zlib.error), a damaged zip member.
_READ_ERRORS = (EOFError, OSError, zlib.error, zipfile.BadZipFile)

# Numbers are bounded so they fit int64 (recv ns: 19 digits below 9e18; ids 18 digits; trade
# time 15 digits of ms, so µs fit too), are JSON numbers (ASCII digits, no leading zero; a
# trade time above 0) and decimals must be decimals; anything else fails the fast path and
# goes to the typed parser, which dead-letters what it cannot take.
_DECIMAL = r"([0-9]+(?:\.[0-9]+)?)"
_TRADE_FRAME = (
    r'^([1-8]?[0-9]{1,18}) \{"stream":"[a-z0-9]+@trade","data":\{"e":"trade",'
    r'"E":(?:0|[1-9][0-9]*),'
    rf'"s":"([A-Z0-9]+)","t":(0|[1-9][0-9]{{0,17}}),"p":"{_DECIMAL}","q":"{_DECIMAL}",'
    r'"T":([1-9][0-9]{0,14}),"m":(true|false)(?:,"M":(?:true|false))?\}\}$'
)
_MAX_RECV_NS = 2**63 - 1
_CSV_COLUMNS = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"]


@dataclass(slots=True)
class ReplayChunk:
    trades: pa.Table
    quotes: list[Quote] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0  # valid frames of streams we do not process (depth, snapshots)
    bytes_read: int = 0
    broken: str | None = None  # the file stopped being readable here: one line for the user


def detect_format(path: Path) -> Format:
    if path.suffix == ".zip" or ".csv" in path.suffixes:
        _open(path).close()  # a damaged archive fails here, before any work
        return "csv"
    with _open(path) as handle:
        try:
            head = handle.readline(4096).lstrip()
        except _READ_ERRORS as exc:
            raise SourceError(f"{path}: cannot be read: {_reason(exc)}") from None
    if not head:
        raise SourceError(f"{path}: the file is empty, there is nothing to replay")
    if head[:1] == b"{":
        return "jsonl"
    first, _, rest = head.partition(b" ")
    if first.isdigit() and rest[:1] == b"{":
        return "recv"
    if head[:1].isdigit() or head.lower().startswith(b"id,"):
        return "csv"
    raise SourceError(
        f"{path}: unrecognized replay format (expected <recv_ns> <json>, JSONL or CSV)"
    )


def _open(path: Path) -> io.BufferedIOBase:
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")
    if path.suffix == ".zip":
        try:
            archive = zipfile.ZipFile(path)
            names = archive.namelist()
            if not names:
                raise SourceError(f"{path}: the zip archive holds no file")
            member = archive.open(names[0])  # a ZipExtFile, typed as IO[bytes]
            assert isinstance(member, io.BufferedIOBase)
            return member
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise SourceError(f"{path}: not a readable zip archive ({exc})") from None
    return path.open("rb")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the compressed data ends early (the file is cut short)"
    if isinstance(exc, gzip.BadGzipFile) and str(exc).startswith("Not a gzipped file"):
        return f"not gzip data ({exc})"
    if isinstance(exc, zlib.error | gzip.BadGzipFile | zipfile.BadZipFile):
        return f"the compressed data is damaged ({exc})"  # a bad CRC, corrupt deflate data
    return str(exc) or type(exc).__name__


@dataclass(slots=True)
class _Break:
    """Where a file stopped being readable: the line that could not be read whole."""

    path: Path
    line: int  # 1-based
    offset: int  # its first byte, in the file's (decompressed) content
    reason: str
    partial: bytes  # what of that line was read

    def message(self) -> str:
        content = "decompressed data" if self.path.suffix in (".gz", ".zip") else "file"
        return (
            f"{self.path}: broken at line {self.line:,} (byte {self.offset:,} of the {content}): "
            f"{self.reason}. Kept the {self.line - 1:,} lines before it; the break is in "
            "dead_letters."
        )

    def dead_letter(self) -> DeadLetter:
        return DeadLetter(
            ts=time.time_ns() // 1000,
            source="replay",
            error=self.message(),
            raw=self.partial,
            context=f"{self.path}:{self.line}",
        )


class _LineBlocks:
    """Blocks of whole lines of one file, each with the number of its first line. A read
    error ends the blocks and is kept in `broken`, so the lines before it are still used."""

    def __init__(self, path: Path, handle: io.BufferedIOBase, size: int = BLOCK_BYTES) -> None:
        self.path, self.handle, self.size = path, handle, size
        self.broken: _Break | None = None

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        buffer = bytearray()
        line, offset = 1, 0  # of the first line in `buffer`
        while True:
            try:
                piece = self.handle.read1(READ_BYTES)
            except _READ_ERRORS as exc:
                self.broken = _Break(self.path, 0, 0, _reason(exc), b"")
                piece = b""
            if piece:
                buffer += piece
                if len(buffer) < self.size:
                    continue
            cut = buffer.rfind(b"\n") + 1
            if piece and not cut:  # one line longer than a block: read on
                continue
            if not piece and self.broken is None:
                cut = len(buffer)  # the end: a last line without a newline is whole
            if cut:
                with memoryview(buffer) as view:  # one copy of the block, not two
                    block = view[:cut].tobytes()
                del buffer[:cut]
                yield line, block
                line += block.count(b"\n") + (not block.endswith(b"\n"))
                offset += len(block)
            if not piece:
                break
        if self.broken is not None:
            self.broken.line, self.broken.offset = line, offset
            self.broken.partial = bytes(buffer)


def _read_all(path: Path, handle: io.BufferedIOBase) -> tuple[bytes, _Break | None]:
    """The whole lines of a file (for formats parsed in one go), and where it broke."""
    lines = _LineBlocks(path, handle)
    return b"".join(block for _, block in lines), lines.broken


# A byte that never occurs in a frame: splitting on it gives whole lines.
_NO_SPLIT = "\x1f"


def _lines(block: bytes, first_line: int = 1) -> pl.DataFrame:
    """The non-empty lines of a block, as a string column `line` with its number `no`.

    Polars' CSV reader splits and decodes the block in Rust, without a Python string per
    line (the Python split cost more than the regex that follows). Undecodable bytes become
    U+FFFD, as before, so such a line fails the fast path and is dead-lettered whole.
    """
    if _NO_SPLIT.encode() in block:  # cannot happen in JSON frames; stay exact if it does
        text = block.decode("utf-8", errors="replace").split("\n")
        lines = pl.Series("line", [t.removesuffix("\r") for t in text], dtype=pl.Utf8)
    else:
        lines = pl.read_csv(
            block, has_header=False, separator=_NO_SPLIT, quote_char=None,
            new_columns=["line"], schema={"line": pl.Utf8}, encoding="utf8-lossy",
        )["line"]  # fmt: skip
    # The reader keeps empty lines (as nulls), so a row's index is its line's offset.
    numbered = pl.DataFrame(
        {"line": lines, "no": pl.int_range(first_line, first_line + len(lines), eager=True)}
    )
    return numbered.filter(lines.is_not_null() & (lines.str.len_bytes() > 0))


class ReplayReader:
    """Reads replay files into chunks of records, in file order.

    `native`: None takes the compiled path when the extension is loaded
    (`observability.native`), False the Python path, True insists on the compiled one.
    """

    def __init__(
        self, paths: Iterable[Path], symbols: SymbolMap | None = None, native: bool | None = None
    ) -> None:
        self.paths = list(paths)
        self.symbols = symbols or SymbolMap()
        self.use_native = native
        self._native: ModuleType | Literal[False] | None = False  # False: not looked up yet
        for path in self.paths:
            detect_format(path)  # fail fast, before any work, on a file we cannot read

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    def __iter__(self) -> Iterator[ReplayChunk]:
        for path in self.paths:
            fmt = detect_format(path)
            if fmt == "csv":
                yield self._csv(path)
                continue
            with _open(path) as handle:
                raw_size = path.stat().st_size
                blocks = _LineBlocks(path, handle)
                for first_line, block in blocks:
                    chunk = (
                        self._recv_block(block, path, first_line)
                        if fmt == "recv"
                        else self._jsonl_block(block, path, first_line)
                    )
                    # Progress in on-disk bytes, so compressed files advance proportionally.
                    chunk.bytes_read = min(raw_size, len(block)) if path.suffix != ".gz" else 0
                    yield chunk
                if blocks.broken is not None:
                    yield _broken_chunk(blocks.broken)
                if path.suffix == ".gz":
                    yield ReplayChunk(TRADE_SCHEMA.empty_table(), bytes_read=raw_size)

    # ---- <recv_ns> <json> recordings -----------------------------------------------------

    def _recv_block(self, block: bytes, path: Path, first_line: int = 1) -> ReplayChunk:
        native = self._extension()
        if native is not None:
            decoded = decode_block(native, block, first_line, self.symbols)
            return self._recv_rest(decoded.trades, decoded.rest, path, decoded.quotes)
        trades, rest = self._regex_block(block, first_line)
        return self._recv_rest(trades, rest, path)

    def _extension(self) -> ModuleType | None:
        """Looked up at the first recording block, so a run that fails on its files first
        logs nothing about the native path."""
        if self._native is False:
            self._native = extension() if self.use_native is not False else None
            if self.use_native and self._native is None:
                raise SourceError("the native path was asked for, but the extension is not loaded")
        return self._native

    def _regex_block(self, block: bytes, first_line: int) -> tuple[pa.Table, pl.DataFrame]:
        """The Python path's fast trades, and the other lines (`line`, `no`) for the parser."""
        numbered = _lines(block, first_line)
        parsed = numbered["line"].str.extract_groups(_TRADE_FRAME)
        fast = numbered.with_columns(m=parsed).unnest("m")
        names = fast.columns[2:]
        fast = fast.rename(dict(zip(names, ["recv", "s", "t", "p", "q", "T", "m"], strict=True)))
        fast = fast.with_columns(pl.col("p", "q").cast(pl.Float64))
        # A zero price or quantity is valid JSON but not a trade: the parser dead-letters it.
        taken = (pl.col("t").is_not_null() & (pl.col("p") > 0) & (pl.col("q") > 0)).fill_null(False)
        # A symbol that does not normalize is the parser's to dead-letter, with its message.
        bad = [s for s in fast.filter(taken)["s"].unique().to_list() if not self._normalizes(s)]
        taken = taken & ~pl.col("s").is_in(bad)
        trades = self._fast_trades(fast.filter(taken))
        return trades, fast.filter(~taken).select("line", "no")

    def _normalizes(self, native: str) -> bool:
        try:
            self.symbols.normalize(native)
        except ValueError:
            return False
        return True

    def _recv_rest(
        self,
        trades: pa.Table,
        rest: pl.DataFrame,
        path: Path,
        native_quotes: pl.DataFrame | None = None,
    ) -> ReplayChunk:
        """The chunk of a block: the fast path's `trades`, and the `rest` lines through the
        typed parser, with the quotes the native path decoded (only each stream's last one)."""
        rows = self._classify(rest, native_quotes)
        chunk = ReplayChunk(trades, skipped=int(rows["kind"].eq("skip").sum()))
        slow_trades: list[Trade] = []
        last_quotes: dict[str, Quote] = {}
        todo = rows.filter(pl.col("kind") != "skip").select("line", "no", "q")
        for line, no, q in todo.iter_rows():
            if q is not None:
                assert native_quotes is not None
                values = native_quotes.row(q, named=True)
                quote = Quote(**{name: values[name] for name in QUOTE_SCHEMA.names})
                last_quotes[quote.symbol] = quote
                continue
            recv, _, frame = line.partition(" ")
            try:
                if not (recv.isascii() and recv.isdigit()) or int(recv) > _MAX_RECV_NS:
                    raise FrameError("line is not '<recv_ns> <json>' with an int64 recv_ns")
                record = parse_frame(frame, self.symbols, int(recv) // 1000)
            except FrameError as exc:
                chunk.dead_letters.append(_dead_letter(line, exc, path, no))
                continue
            if isinstance(record, Trade):
                slow_trades.append(record)
            elif isinstance(record, Quote):
                last_quotes[record.symbol] = record
            else:
                chunk.skipped += 1
        if slow_trades:
            chunk.trades = pa.concat_tables([chunk.trades, to_table(slow_trades, TRADE_SCHEMA)])
        chunk.quotes = list(last_quotes.values())
        return chunk

    @staticmethod
    def _classify(rest: pl.DataFrame, native_quotes: pl.DataFrame | None = None) -> pl.DataFrame:
        """Lines the fast path did not take: keep only the last quote of each stream, skip
        streams we do not process and inlined REST snapshots, send the rest to the parser.
        Quotes decoded natively (`q`: their row) take part in "the last of each stream"."""
        stream = pl.col("line").str.extract(r'^\d+ \{"stream":"([^"]+)"', 1)
        kind = (
            pl.when(stream.str.ends_with("@bookTicker"))
            .then(pl.lit("quote"))
            .when(stream.is_not_null() & ~stream.str.ends_with("@trade"))
            .then(pl.lit("skip"))
            .when(pl.col("line").str.contains(r'^\d+ \{"lastUpdateId":'))
            .then(pl.lit("skip"))
            .otherwise(pl.lit("parse"))
        )
        rest = rest.with_columns(stream=stream, kind=kind, q=pl.lit(None, dtype=pl.UInt32))
        if native_quotes is not None and native_quotes.height:
            decoded = native_quotes.select(
                line=pl.lit(None, dtype=pl.Utf8),
                no="no",
                stream="stream",
                # A line not starting `<digits> {"stream":"` is parsed on its own (no grouping).
                kind=pl.when(pl.col("stream").is_null())
                .then(pl.lit("parse"))
                .otherwise(pl.lit("quote")),
                q=pl.int_range(pl.len(), dtype=pl.UInt32),
            )
            rest = pl.concat([rest, decoded]).sort("no")
        rest = rest.with_columns(row=pl.int_range(pl.len()))
        quotes = rest.filter(pl.col("kind") == "quote").group_by("stream").agg(pl.all().last())
        superseded = rest.filter(pl.col("kind") == "quote").join(
            quotes.select("row"), on="row", how="anti"
        )
        rest = rest.join(superseded.select("row"), on="row", how="anti")
        return rest.sort("row").select("line", "kind", "no", "q")

    def _fast_trades(self, matched: pl.DataFrame) -> pa.Table:
        if not matched.height:
            return TRADE_SCHEMA.empty_table()
        natives = matched["s"].unique().to_list()
        symbol_of = {native: self.symbols.normalize(native) for native in natives}
        frame = matched.select(
            exchange=pl.lit(EXCHANGE),
            symbol=pl.col("s").replace_strict(symbol_of, return_dtype=pl.Utf8),
            trade_id=pl.col("t").cast(pl.Int64),
            price=pl.col("p").cast(pl.Float64),
            qty=pl.col("q").cast(pl.Float64),
            side=pl.when(pl.col("m") == "true").then(pl.lit("sell")).otherwise(pl.lit("buy")),
            ts_event=pl.col("T").cast(pl.Int64) * 1000,
            ts_recv=pl.col("recv").cast(pl.Int64) // 1000,
        )
        return _to_trade_table(frame)

    # ---- our capture JSONL ---------------------------------------------------------------

    def _jsonl_block(self, block: bytes, path: Path, first_line: int = 1) -> ReplayChunk:
        good: list[dict[str, object]] = []
        chunk = ReplayChunk(TRADE_SCHEMA.empty_table())
        for no, line in enumerate(block.split(b"\n"), first_line):
            if not line.strip():
                continue
            try:
                row = msgspec.json.decode(line, type=_CapturedTrade)
                good.append(row.to_columns(self.symbols))
            except (msgspec.DecodeError, ValueError) as exc:
                text = line.decode(errors="replace")
                chunk.dead_letters.append(_dead_letter(text, exc, path, no))
        if good:
            chunk.trades = _to_trade_table(pl.DataFrame(good))
        return chunk

    # ---- Binance public-dump CSV ---------------------------------------------------------

    def _csv(self, path: Path) -> ReplayChunk:
        native = path.name.split("-", 1)[0]
        try:
            symbol = self.symbols.normalize(native)
        except ValueError as exc:
            raise SourceError(
                f"{path}: a trades CSV is named after its symbol, like "
                f"BTCUSDT-trades-2024-08-09.csv ({exc})"
            ) from None
        with _open(path) as handle:
            data, broken = _read_all(path, handle)
        if broken is not None and not data.strip():
            return _broken_chunk(broken, bytes_read=path.stat().st_size)
        has_header = data[:2].lower() == b"id"
        try:
            raw = pl.read_csv(
                io.BytesIO(data), has_header=has_header, new_columns=_CSV_COLUMNS,
                schema_overrides={
                    "id": pl.Int64, "price": pl.Float64, "qty": pl.Float64, "time": pl.Int64
                },
            )  # fmt: skip
        except pl.exceptions.PolarsError as exc:
            raise SourceError(f"{path}: not a Binance trades CSV: {exc}") from None
        # Spot dumps switched from milliseconds to microseconds in 2025.
        scale = 1 if raw.height and int(raw["time"].max()) > 10**14 else 1000  # type: ignore[arg-type]
        now_us = time.time_ns() // 1000
        frame = raw.select(
            exchange=pl.lit(EXCHANGE),
            symbol=pl.lit(symbol),
            trade_id=pl.col("id"),
            price=pl.col("price"),
            qty=pl.col("qty"),
            side=pl.when(pl.col("is_buyer_maker").cast(pl.Utf8).str.to_lowercase() == "true")
            .then(pl.lit("sell"))
            .otherwise(pl.lit("buy")),
            ts_event=pl.col("time") * scale,
            ts_recv=pl.lit(now_us, dtype=pl.Int64),
        )
        chunk = ReplayChunk(_to_trade_table(frame), bytes_read=path.stat().st_size)
        if broken is not None:
            chunk.dead_letters.append(broken.dead_letter())
            chunk.broken = broken.message()
        return chunk


T = TypeVar("T")


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced on a background thread up to `depth` ahead of the consumer.

    Parsing the next block (polars, which releases the GIL) then overlaps processing and
    committing this one, so replay keeps both cores busy. Errors reach the consumer in order.
    """
    ready: queue.Queue[tuple[bool, object]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put((False, exc))
            return
        put((False, None))

    worker = threading.Thread(target=produce, name="replay-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, value = ready.get()
            if ok:
                yield value  # type: ignore[misc]
            elif value is None:
                return
            else:
                raise value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


class _CapturedTrade(msgspec.Struct):
    exchange: str
    symbol: str
    trade_id: int
    price: float
    qty: float
    side: str
    ts_event: str | int
    ts_recv: str | int

    def to_columns(self, symbols: SymbolMap) -> dict[str, object]:
        if self.side not in ("buy", "sell"):
            raise ValueError(f"side {self.side!r} is not buy or sell")
        return {
            "exchange": self.exchange.lower(),
            "symbol": symbols.normalize(self.symbol),
            "trade_id": self.trade_id,
            "price": self.price,
            "qty": self.qty,
            "side": self.side,
            "ts_event": _to_us(self.ts_event),
            "ts_recv": _to_us(self.ts_recv),
        }


def _to_us(value: str | int) -> int:
    if isinstance(value, int):
        return value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(parsed.timestamp()) * 1_000_000 + parsed.microsecond


def _to_trade_table(frame: pl.DataFrame) -> pa.Table:
    return frame.select(TRADE_SCHEMA.names).to_arrow().cast(TRADE_INT_SCHEMA).cast(TRADE_SCHEMA)


def _dead_letter(line: str, exc: Exception, path: Path, line_no: int) -> DeadLetter:
    return DeadLetter(
        ts=time.time_ns() // 1000,
        source="replay",
        error=str(exc),
        raw=line.encode(),
        context=f"{path}:{line_no}",
    )


def _broken_chunk(broken: _Break, bytes_read: int = 0) -> ReplayChunk:
    return ReplayChunk(
        TRADE_SCHEMA.empty_table(),
        dead_letters=[broken.dead_letter()],
        bytes_read=bytes_read,
        broken=broken.message(),
    )
