"""Fuzzing the frame parsers with random bytes and mutated real Binance frames.

Whatever arrives, nothing raises out of the connector or the replay reader: a frame is a
record, a control frame, or a dead letter carrying the raw bytes. Records that do come out fit
the stored schema (int64 ids and times, positive prices), so they cannot crash the pipeline
further down either. Budgets are bounded (`max_examples`) so this runs in CI.
"""

import asyncio
import gzip
import itertools
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpipe.model.errors import FrameError
from marketpipe.model.records import DeadLetter, Quote, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.binance.connector import BinanceConnector
from marketpipe.sources.binance.frames import parse_frame
from marketpipe.sources.binance.settings import BinanceSettings
from marketpipe.sources.replay import ReplayReader
from tests.conftest import BINANCE_08

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _real_lines(limit_per_stream: int = 40) -> list[bytes]:
    """Recorded `<recv_ns> <frame>` lines: trades, book tickers and depth updates."""
    seen: dict[bytes, int] = {}
    lines: list[bytes] = []
    with gzip.open(BINANCE_08, "rb") as handle:
        for line in itertools.islice(handle, 20_000):
            stream = line.split(b'"stream":"', 1)[-1].split(b'"', 1)[0]
            if seen.get(stream, 0) < limit_per_stream:
                seen[stream] = seen.get(stream, 0) + 1
                lines.append(line.rstrip(b"\n"))
    return lines


REAL = _real_lines()
NUMBERS = [b"0", b"-1", b"1e309", b"NaN", b"9223372036854775808", b"99999999999999999999999",
           b"0.00000000", b"-0.5", b'"1"', b"null", b"true", b"[]", b"{}", b'""']  # fmt: skip


@st.composite
def mutated_line(draw: st.DrawFn) -> bytes:
    """A real line with one to three random edits: truncation, deletion, insertion, a byte
    flip, a number or value swapped for a nasty one, or a key renamed."""
    line = draw(st.sampled_from(REAL))
    for _ in range(draw(st.integers(1, 3))):
        n = len(line)
        kind = draw(st.sampled_from(["cut", "delete", "insert", "flip", "value", "key"]))
        i = draw(st.integers(0, max(0, n - 1)))
        if kind == "cut":
            line = line[:i]
        elif kind == "delete":
            line = line[:i] + line[i + draw(st.integers(1, 12)) :]
        elif kind == "insert":
            line = line[:i] + draw(st.binary(min_size=1, max_size=8)) + line[i:]
        elif kind == "flip" and n:
            line = line[:i] + bytes([draw(st.integers(0, 255))]) + line[i + 1 :]
        elif kind == "value":
            key = draw(st.sampled_from([b'"t":', b'"T":', b'"E":', b'"p":', b'"q":', b'"m":']))
            head, sep, tail = line.partition(key)
            if sep:
                end = min((p for p in (tail.find(b","), tail.find(b"}")) if p >= 0), default=0)
                line = head + sep + draw(st.sampled_from(NUMBERS)) + tail[end:]
        elif kind == "key":
            old, new = draw(st.sampled_from([(b'"t"', b'"x"'), (b'"s"', b'"S"'),
                                             (b'"data"', b'"dat"'), (b'"p"', b'"q"')]))  # fmt: skip
            line = line.replace(old, new, 1)
    return line


def _frame(line: bytes) -> bytes:
    return line.split(b" ", 1)[-1]


def _assert_storable(trades: list[Trade]) -> None:
    table = to_table(trades, TRADE_SCHEMA)  # int64 ids and times: raises if out of range
    assert table.num_rows == len(trades)
    assert all(t.price > 0 and t.qty > 0 for t in trades)


# ---- the typed parser ----------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.binary(max_size=300), mutated_line().map(_frame)))
def test_parse_frame_returns_a_record_or_raises_frame_error_only(raw: bytes) -> None:
    try:
        record = parse_frame(raw, SymbolMap(), 1_723_161_600_000_000)
    except FrameError:
        return
    if isinstance(record, Trade):
        _assert_storable([record])


# ---- the connector: dead letters, never an exception ---------------------------------------


class _Backfills:
    """Stands in for the REST back-filler: the connector only hands it jobs."""

    pending = 0

    def __init__(self) -> None:
        self.jobs: list[object] = []

    def submit(self, jobs: list[object]) -> None:
        self.jobs.extend(jobs)


def _connector(out: list[Trade | Quote | DeadLetter]) -> BinanceConnector:
    async def emit(records: list[Trade | Quote | DeadLetter]) -> None:
        out.extend(records)

    connector = BinanceConnector(BinanceSettings(), ["BTC-USDT"], emit)
    # What `run()` sets up before the first frame arrives, minus the network.
    connector.spec.symbol_map = SymbolMap()
    connector._backfiller = _Backfills()  # type: ignore[assignment]
    return connector


@FUZZ
@given(st.lists(st.one_of(mutated_line().map(_frame), st.binary(max_size=200)), max_size=20))
def test_connector_turns_every_bad_frame_into_a_dead_letter(frames: list[bytes]) -> None:
    out: list[Trade | Quote | DeadLetter] = []
    connector = _connector(out)
    batch = [(raw, 1_723_161_600_000_000 + i) for i, raw in enumerate(frames)]
    asyncio.run(connector.on_frames("fuzz", batch))  # must not raise

    rejected = []
    for raw, recv in batch:
        try:
            parse_frame(raw, SymbolMap(), recv)
        except FrameError:
            rejected.append(raw)
    dead = [r for r in out if isinstance(r, DeadLetter)]
    assert [d.raw for d in dead] == rejected
    assert all(d.error and d.source == "binance" for d in dead)
    assert connector.status().dead_letters == len(dead)
    _assert_storable([r for r in out if isinstance(r, Trade)])


# ---- the replay reader ---------------------------------------------------------------------


@FUZZ
@given(st.lists(st.one_of(mutated_line(), st.sampled_from(REAL)), min_size=1, max_size=30))
def test_replay_of_mutated_recordings_never_raises_and_dead_letters_the_bad_lines(
    lines: list[bytes],
) -> None:
    path = Path(f"/tmp/marketpipe-fuzz-{random.getrandbits(64):x}.recv")
    # Lines must stay lines: a mutation that inserted a newline splits one into two.
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        try:
            chunks = list(ReplayReader([path]))
        except Exception as exc:  # only an unreadable *file* may fail, and clearly
            from marketpipe.model.errors import SourceError

            assert isinstance(exc, SourceError), repr(exc)
            return
    finally:
        path.unlink(missing_ok=True)
    for chunk in chunks:
        trades = chunk.trades
        assert trades.schema == TRADE_SCHEMA
        assert all(p > 0 for p in trades.column("price").to_pylist())
        assert all(q > 0 for q in trades.column("qty").to_pylist())
        assert all(d.raw and d.error for d in chunk.dead_letters)
    good_trades = sum(1 for line in lines if line in REAL and b"@trade" in line)
    assert sum(c.trades.num_rows for c in chunks) >= good_trades
