"""Recordings of any venue, read through that venue's own parser (its `VenueSpec.parse`).

Which venue a recording is, decided before any work:
- the reader's `venue` (`marketpipe replay --venue kraken`), when given, for every file;
- else a cryptofeed recording's name: `cryptofeed-COINBASE.ws.28.0` is cryptofeed's feed id,
  which lower-cased is our venue's name; or, for a renamed file, the host its first line
  connected to (`wss://ws-feed.pro.coinbase.com <-> ...`), matched by domain against each
  registered venue's default endpoints;
- else a `<recv_ns> <json>` recording is Binance's, as it always was.
An unknown venue fails at once with a message naming it and the known ones.

A frame goes to the spec's `parse`, the same code a live connection runs: its trades and
quotes are kept (the last quote per symbol of a block, as for Binance), its Control frames are
counted as skipped, and a FrameError is dead-lettered under the file and line.
"""

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from marketpipe.model.errors import FrameError, SourceError
from marketpipe.model.records import Quote, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.sources.cryptofeed_recording import parse_line
from marketpipe.sources.replay_chunk import ReplayChunk, dead_letter
from marketpipe.sources.venue import VenueSettings, VenueSpec, redact_url
from marketpipe.sources.venues import VENUES, venue

# cryptofeed names its files `cryptofeed-<FEED>.<ws|http>.<n>.<m>`.
RECORDING_NAME = re.compile(r"^cryptofeed-([A-Za-z0-9_]+)\.")
MAX_RECV_NS = 2**63 - 1

# Where a reader gets a venue's settings (the parser's limits, Finnhub's key windows).
VenueSettingsOf = Callable[[str], VenueSettings]
# One line of a recording as `(frame, recv_us)`; None for a line that is no frame (a connect,
# a subscribe we sent); FrameError for a line of no known form.
LineSplitter = Callable[[bytes], tuple[bytes, int] | None]


def default_settings(name: str) -> VenueSettings:
    return venue(name).settings.model_validate({})


def known_venue(name: str, where: str) -> str:
    """The registry's name for `name`; SourceError naming it (and `where` it came from)."""
    try:
        return venue(name).name
    except ValueError as exc:
        raise SourceError(f"{where}: {exc}") from None


def _domain(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return ".".join(host.split(".")[-2:])


def venue_of_url(url: str) -> str | None:
    """The registered venue whose default endpoints share `url`'s domain (`coinbase.com`)."""
    domain = _domain(url)
    for name, entry in VENUES.items():
        defaults = entry.settings.model_validate({})
        if domain and domain in (_domain(defaults.ws_url), _domain(defaults.rest_url)):
            return name
    return None


def recording_venue(path: Path, head: bytes) -> str:
    """The venue of a cryptofeed recording, from its name or its first (connect) line."""
    named = RECORDING_NAME.match(path.name)
    if named is not None:
        return known_venue(named.group(1).lower(), f"{path} is a recording of")
    first = parse_line(head)
    if first is not None and first.url:
        found = venue_of_url(first.url)
        if found is not None:
            return found
        raise SourceError(
            f"{path}: recorded from {redact_url(first.url)}, which is no venue marketpipe "
            f"knows ({', '.join(sorted(VENUES))}); name the venue with --venue"
        )
    raise SourceError(
        f"{path}: a cryptofeed recording whose venue neither its name "
        "(cryptofeed-<VENUE>.ws.<n>.<m>) nor a connect line tells; name it with --venue"
    )


# Valid frames a venue's parser refuses only because we do not ingest them, by venue (the
# other parsers return Control for theirs). Binance's raises on every stream but trade and
# bookTicker, and its recordings hold depth, kline and aggTrade frames: skipped, not dead.
_BINANCE_STREAM = re.compile(rb'^\s*\{"stream":"[a-z0-9]+@([A-Za-z0-9_@]+)"')


def _binance_not_ingested(raw: bytes) -> bool:
    found = _BINANCE_STREAM.match(raw)
    return found is not None and found.group(1) not in (b"trade", b"bookTicker")


NOT_INGESTED: dict[str, Callable[[bytes], bool]] = {"binance": _binance_not_ingested}


def cryptofeed_frame(line: bytes) -> tuple[bytes, int] | None:
    parsed = parse_line(line)
    if parsed is None:
        raise FrameError("not a cryptofeed recording line (`ts: frame`, `url <- ts: sent`, "
                         "`url <-> ts`)")  # fmt: skip
    return (parsed.raw, parsed.recv_us) if parsed.kind == "received" else None


def recv_frame(line: bytes) -> tuple[bytes, int]:
    recv, _, frame = line.partition(b" ")
    if not (recv.isascii() and recv.isdigit()) or int(recv) > MAX_RECV_NS:
        raise FrameError("line is not '<recv_ns> <json>' with an int64 recv_ns")
    return frame, int(recv) // 1000


class VenueFrames:
    """Blocks of one venue's recorded lines through its spec's parser, into chunks. One per
    venue and reader: state a parser keeps (Kraken's and Finnhub's trade keys) spans files."""

    def __init__(self, spec: VenueSpec) -> None:
        self.spec = spec
        self.not_ingested = NOT_INGESTED.get(spec.name)

    def chunk(self, block: bytes, path: Path, first_line: int, split: LineSplitter) -> ReplayChunk:
        chunk = ReplayChunk(TRADE_SCHEMA.empty_table())
        trades: list[Trade] = []
        quotes: dict[str, Quote] = {}
        for no, piece in enumerate(block.split(b"\n"), first_line):
            line = piece.rstrip(b"\r")
            if not line.strip():
                continue
            try:
                frame = split(line)
                if frame is None:
                    continue
                raw, recv_us = frame
                if self.not_ingested is not None and self.not_ingested(raw):
                    chunk.skipped += 1
                    continue
                records = self.spec.parse(raw, recv_us)
            except (FrameError, ValueError, msgspec.MsgspecError) as exc:
                text = line.decode(errors="replace")
                chunk.dead_letters.append(dead_letter(text, exc, path, no))
                continue
            for record in records:
                if isinstance(record, Trade):
                    trades.append(record)
                elif isinstance(record, Quote):
                    quotes[record.symbol] = record
                else:
                    chunk.skipped += 1
        if trades:
            chunk.trades = to_table(trades, TRADE_SCHEMA)
        chunk.quotes = list(quotes.values())
        return chunk
