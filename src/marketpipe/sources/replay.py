"""Replay recorded data through the same pipeline code as live.

Formats, detected from content (plain, `.gz`, or `.zip` for CSVs):
- `<recv_ns> <json>` recordings: Binance combined-stream frames, or any venue's frames with
  `venue` given;
- cryptofeed recordings (`cryptofeed-COINBASE.ws.28.0`) of any registered venue, named by the
  file or its connect line (`sources/replay_venues.py`);
- our own capture JSONL for any venue (`sources/replay_capture.py`);
- Binance public-dump trade CSVs (`BTCUSDT-trades-2024-08-09.csv` or `.zip`).

Every venue's frames but Binance's `<recv_ns> <json>` go through that venue's own parser
(`VenueSpec.parse`). Binance's recordings keep the paths below.

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

import io
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Final, Literal, TypeVar

import polars as pl
import pyarrow as pa

from marketpipe.model.errors import FrameError, SourceError
from marketpipe.model.records import Quote, Trade
from marketpipe.model.schemas import QUOTE_SCHEMA, TRADE_SCHEMA, to_table
from marketpipe.model.symbols import SymbolMap
from marketpipe.observability.native import extension
from marketpipe.sources.binance.frames import EXCHANGE, parse_frame
from marketpipe.sources.replay_capture import CaptureLines, check_capture_start
from marketpipe.sources.replay_chunk import ReplayChunk, broken_chunk, dead_letter, to_trade_table
from marketpipe.sources.replay_files import (
    Format,
    LineBlocks,
    detect_format,
    first_line,
    numbered_lines,
    open_file,
    read_all,
)
from marketpipe.sources.replay_native import decode_block
from marketpipe.sources.replay_venues import (
    LineSplitter,
    VenueFrames,
    VenueSettingsOf,
    cryptofeed_frame,
    default_settings,
    known_venue,
    recording_venue,
    recv_frame,
)
from marketpipe.sources.venues import venue as registered_venue

__all__ = ["ReplayChunk", "ReplayReader", "detect_format", "read_ahead"]

log = logging.getLogger(__name__)

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
# The venues whose `<recv_ns> <json>` recordings have decoders of their own here (vectorized,
# native); every other venue's frames take its spec's parser (`replay_venues.VenueFrames`).
OWN_RECV_DECODERS: Final = frozenset({EXCHANGE})
_CSV_COLUMNS = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker", "is_best_match"]


class ReplayReader:
    """Reads replay files into chunks of records, in file order.

    `venue`: every file's venue (`--venue`), overriding what a file names; None lets each file
    say (a cryptofeed recording's name, a capture line's `exchange`; Binance for recv lines).
    `venue_settings`: a venue's settings section (default: the venue's defaults).
    `native`: None takes the compiled path when the extension is loaded
    (`observability.native`), False the Python path, True insists on the compiled one.
    Every file's format and venue are checked here, before any work: SourceError naming it.
    """

    def __init__(
        self,
        paths: Iterable[Path],
        symbols: SymbolMap | None = None,
        native: bool | None = None,
        *,
        venue: str | None = None,
        venue_settings: VenueSettingsOf | None = None,
    ) -> None:
        self.paths = list(paths)
        self.symbols = symbols or SymbolMap()
        self.use_native = native
        self._native: ModuleType | Literal[False] | None = False  # False: not looked up yet
        self.venue = None if venue is None else known_venue(venue, "--venue")
        self._settings_of = venue_settings or default_settings
        self._frames: dict[str, VenueFrames] = {}  # one parser per venue, across files
        self._capture = CaptureLines(self.symbols, self.venue)
        # Fail fast, before any work, on a file we cannot read or whose venue is unknown.
        self._plan = [(path, *self._format_and_venue(path)) for path in self.paths]

    def _format_and_venue(self, path: Path) -> tuple[Format, str | None]:
        fmt = detect_format(path)
        if fmt == "cryptofeed":
            return fmt, self.venue or recording_venue(path, first_line(path))
        if fmt == "recv":
            return fmt, self.venue or EXCHANGE
        if fmt == "jsonl":
            check_capture_start(path, first_line(path), self.venue)
            return fmt, None  # per line
        if self.venue not in (None, EXCHANGE):
            raise SourceError(f"{path}: trade CSVs are Binance's public dumps, not {self.venue}'s")
        return fmt, EXCHANGE

    def venues(self) -> list[str | None]:
        """Each file's venue (None: a capture's lines name theirs), in file order."""
        return [name for _, _, name in self._plan]

    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    def __iter__(self) -> Iterator[ReplayChunk]:
        for path, fmt, venue in self._plan:
            if fmt == "csv":
                yield self._csv(path)
                continue
            with open_file(path) as handle:
                raw_size = path.stat().st_size
                blocks = LineBlocks(path, handle)
                for first, block in blocks:
                    chunk = self._block(fmt, venue, block, path, first)
                    # Progress in on-disk bytes, so compressed files advance proportionally.
                    chunk.bytes_read = min(raw_size, len(block)) if path.suffix != ".gz" else 0
                    yield chunk
                if blocks.broken is not None:
                    yield broken_chunk(blocks.broken)
                if path.suffix == ".gz":
                    yield ReplayChunk(TRADE_SCHEMA.empty_table(), bytes_read=raw_size)

    def _block(
        self, fmt: Format, venue: str | None, block: bytes, path: Path, first: int
    ) -> ReplayChunk:
        if fmt == "jsonl":
            return self._capture.chunk(block, path, first)
        assert venue is not None
        if fmt == "recv" and venue in OWN_RECV_DECODERS:
            return self._recv_block(block, path, first)
        split: LineSplitter = cryptofeed_frame if fmt == "cryptofeed" else recv_frame
        return self._venue_frames(venue).chunk(block, path, first, split)

    def _venue_frames(self, name: str) -> VenueFrames:
        frames = self._frames.get(name)
        if frames is None:
            spec = registered_venue(name).build(self._settings_of(name))
            frames = self._frames[name] = VenueFrames(spec)
        return frames

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
        numbered = numbered_lines(block, first_line)
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
                chunk.dead_letters.append(dead_letter(line, exc, path, no))
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
        return to_trade_table(frame)

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
        with open_file(path) as handle:
            data, broken = read_all(path, handle)
        if broken is not None and not data.strip():
            return broken_chunk(broken, bytes_read=path.stat().st_size)
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
        chunk = ReplayChunk(to_trade_table(frame), bytes_read=path.stat().st_size)
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
