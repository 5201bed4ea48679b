"""Replay recorded data through the same pipeline code as live.

Formats, detected from content:
- `<recv_ns> <json>` recordings of Binance combined-stream frames (plain or `.gz`);
- our own capture JSONL: one trade object per line, as `marketpipe query trades --format jsonl`;
- Binance public-dump trade CSVs (`BTCUSDT-trades-2024-08-09.csv` or `.zip`).

Trade frames in Binance's canonical key order take a vectorized path (one regex over the
block in Rust); anything else goes through the typed frame parser, and what fails there is
dead-lettered, never fatal.
"""

import gzip
import io
import logging
import queue
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Literal, TypeVar

import msgspec
import polars as pl
import pyarrow as pa

from marketpipe.model.errors import FrameError, SourceError
from marketpipe.model.records import DeadLetter, Quote, Trade
from marketpipe.model.schemas import TRADE_INT_SCHEMA, TRADE_SCHEMA, to_table
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.binance.frames import EXCHANGE, parse_frame

log = logging.getLogger(__name__)

Format = Literal["recv", "jsonl", "csv"]
BLOCK_BYTES = 32 * 1024 * 1024

# Numbers are bounded so they fit int64 (recv ns: 19 digits below 9e18; ids 18 digits; trade
# time 15 digits of ms, so µs fit too) and decimals must be decimals; anything else fails the
# fast path and goes to the typed parser, which dead-letters what it cannot take.
_DECIMAL = r"([0-9]+(?:\.[0-9]+)?)"
_TRADE_FRAME = (
    r'^([1-8]?[0-9]{1,18}) \{"stream":"[a-z0-9]+@trade","data":\{"e":"trade","E":\d+,'
    rf'"s":"([A-Z0-9]+)","t":([0-9]{{1,18}}),"p":"{_DECIMAL}","q":"{_DECIMAL}",'
    r'"T":([0-9]{1,15}),"m":(true|false)(?:,"M":(?:true|false))?\}\}$'
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


def detect_format(path: Path) -> Format:
    if path.suffix == ".zip" or ".csv" in path.suffixes:
        return "csv"
    with _open(path) as handle:
        head = handle.readline(4096).lstrip()
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


def _open(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    if path.suffix == ".zip":
        archive = zipfile.ZipFile(path)
        return archive.open(archive.namelist()[0])
    return path.open("rb")


def _blocks(handle: IO[bytes], size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Blocks of whole lines."""
    carry = b""
    while chunk := handle.read(size):
        chunk = carry + chunk
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carry = chunk
            continue
        carry = chunk[cut + 1 :]
        yield chunk[: cut + 1]
    if carry.strip():
        yield carry


# A byte that never occurs in a frame: splitting on it gives whole lines.
_NO_SPLIT = "\x1f"


def _lines(block: bytes) -> pl.Series:
    """The non-empty lines of a block, as one string column.

    Polars' CSV reader splits and decodes the block in Rust, without a Python string per
    line (the Python split cost more than the regex that follows). Undecodable bytes become
    U+FFFD, as before, so such a line fails the fast path and is dead-lettered whole.
    """
    if _NO_SPLIT.encode() in block:  # cannot happen in JSON frames; stay exact if it does
        text = block.decode("utf-8", errors="replace").splitlines()
        lines = pl.Series("line", text, dtype=pl.Utf8)
    else:
        lines = pl.read_csv(
            block, has_header=False, separator=_NO_SPLIT, quote_char=None,
            new_columns=["line"], schema={"line": pl.Utf8}, encoding="utf8-lossy",
        )["line"]  # fmt: skip
    return lines.filter(lines.is_not_null() & (lines.str.len_bytes() > 0))


class ReplayReader:
    """Reads replay files into chunks of records, in file order."""

    def __init__(self, paths: Iterable[Path], symbols: SymbolMap | None = None) -> None:
        self.paths = list(paths)
        self.symbols = symbols or SymbolMap()
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
                for block in _blocks(handle):
                    chunk = (
                        self._recv_block(block, path)
                        if fmt == "recv"
                        else self._jsonl_block(block, path)
                    )
                    # Progress in on-disk bytes, so compressed files advance proportionally.
                    chunk.bytes_read = min(raw_size, len(block)) if path.suffix != ".gz" else 0
                    yield chunk
                if path.suffix == ".gz":
                    yield ReplayChunk(TRADE_SCHEMA.empty_table(), bytes_read=raw_size)

    # ---- <recv_ns> <json> recordings -----------------------------------------------------

    def _recv_block(self, block: bytes, path: Path) -> ReplayChunk:
        lines = _lines(block)
        parsed = lines.str.extract_groups(_TRADE_FRAME)
        fast = pl.DataFrame({"line": lines, "m": parsed}).unnest("m")
        names = fast.columns[1:]
        fast = fast.rename(dict(zip(names, ["recv", "s", "t", "p", "q", "T", "m"], strict=True)))
        fast = fast.with_columns(pl.col("p", "q").cast(pl.Float64))
        # A zero price or quantity is valid JSON but not a trade: the parser dead-letters it.
        taken = (pl.col("t").is_not_null() & (pl.col("p") > 0) & (pl.col("q") > 0)).fill_null(False)
        matched = fast.filter(taken)
        trades = self._fast_trades(matched)
        rest = self._classify(fast.filter(~taken).select("line"))
        chunk = ReplayChunk(trades, skipped=int(rest["kind"].eq("skip").sum()))
        slow_trades: list[Trade] = []
        last_quotes: dict[str, Quote] = {}
        for line in rest.filter(pl.col("kind") != "skip")["line"]:
            recv, _, frame = line.partition(" ")
            try:
                if not recv.isdigit() or int(recv) > _MAX_RECV_NS:
                    raise FrameError("line is not '<recv_ns> <json>' with an int64 recv_ns")
                record = parse_frame(frame, self.symbols, int(recv) // 1000)
            except FrameError as exc:
                chunk.dead_letters.append(_dead_letter(line, exc, path))
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
    def _classify(rest: pl.DataFrame) -> pl.DataFrame:
        """Lines the fast path did not take: keep only the last quote of each stream, skip
        streams we do not process and inlined REST snapshots, send the rest to the parser."""
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
        rest = rest.with_columns(stream=stream, kind=kind, row=pl.int_range(pl.len()))
        quotes = rest.filter(pl.col("kind") == "quote").group_by("stream").agg(pl.all().last())
        superseded = rest.filter(pl.col("kind") == "quote").join(
            quotes.select("row"), on="row", how="anti"
        )
        rest = rest.join(superseded.select("row"), on="row", how="anti")
        return rest.sort("row").select("line", "kind")

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

    def _jsonl_block(self, block: bytes, path: Path) -> ReplayChunk:
        good: list[dict[str, object]] = []
        chunk = ReplayChunk(TRADE_SCHEMA.empty_table())
        for line in block.splitlines():
            if not line.strip():
                continue
            try:
                row = msgspec.json.decode(line, type=_CapturedTrade)
                good.append(row.to_columns(self.symbols))
            except (msgspec.DecodeError, ValueError) as exc:
                chunk.dead_letters.append(_dead_letter(line.decode(errors="replace"), exc, path))
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
            data = handle.read()
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
        return ReplayChunk(_to_trade_table(frame), bytes_read=path.stat().st_size)


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


def _dead_letter(line: str, exc: Exception, path: Path) -> DeadLetter:
    return DeadLetter(
        ts=time.time_ns() // 1000,
        source="replay",
        error=str(exc),
        raw=line.encode(),
        context=str(path),
    )
