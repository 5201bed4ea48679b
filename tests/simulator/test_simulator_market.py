"""The synthetic market, the frame writer and the recorded feed, without a server."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from marketpipe.model.records import Trade
from marketpipe.model.schemas import TRADE_SCHEMA, from_table
from marketpipe.model.symbols import SymbolMap
from marketpipe.simulator import FaultPlan, RecordedFeed, SyntheticMarket, write_trade_frames
from marketpipe.simulator.history import TradeHistory
from marketpipe.sources.binance.frames import parse_frame
from tests.conftest import BINANCE_08

pytestmark = pytest.mark.unit

START_US = 1_723_161_255_000_000
SYMBOLS = ["BTCUSDT", "ETH-USDT", "SOL-USDT", "DOGE-USDT"]
RECORDING = BINANCE_08


def test_same_seed_gives_the_same_trades_and_another_seed_does_not() -> None:
    a = SyntheticMarket(SYMBOLS, 500, seed=11, start_us=START_US).generate(5000)
    b = SyntheticMarket(SYMBOLS, 500, seed=11, start_us=START_US).generate(5000)
    c = SyntheticMarket(SYMBOLS, 500, seed=12, start_us=START_US).generate(5000)
    assert np.array_equal(a.price_units, b.price_units) and np.array_equal(a.ts_us, b.ts_us)
    assert not np.array_equal(a.price_units, c.price_units)


def test_trade_ids_are_consecutive_per_symbol_and_times_ordered_across_advance_calls() -> None:
    market = SyntheticMarket(SYMBOLS, 2000, seed=3, start_us=START_US)
    trades: list[Trade] = []
    for step in range(1, 31):
        trades += market.advance(START_US + step * 333_000)
    assert len(trades) > 10_000
    assert all(t.ts_event <= START_US + 30 * 333_000 for t in trades)
    assert [t.ts_event for t in trades] == sorted(t.ts_event for t in trades)
    for symbol in {t.symbol for t in trades}:
        ids = [t.trade_id for t in trades if t.symbol == symbol]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert ids[0] > 100_000_000  # a realistic, large starting id
    assert {t.symbol for t in trades} == {"BTC-USDT", "ETH-USDT", "SOL-USDT", "DOGE-USDT"}
    assert all(t.ts_event % 1000 == 0 for t in trades)  # Binance times are milliseconds


def test_starting_prices_are_realistic_and_quotes_straddle_the_last_trade() -> None:
    market = SyntheticMarket(["BTCUSDT", "ETHUSDT", "SOLUSDT", "ZZZUSDT"], 100, seed=1, start_us=0)
    trades = market.advance(60_000_000)
    last = {t.symbol: t.price for t in trades}
    assert 50_000 < last["BTC-USDT"] < 70_000
    assert 2_500 < last["ETH-USDT"] < 3_500
    assert 120 < last["SOL-USDT"] < 180
    assert 0 < last["ZZZ-USDT"] < 1000
    quote = market.quote("BTC-USDT")
    assert quote.bid < quote.ask and quote.bid <= last["BTC-USDT"] <= quote.ask
    assert quote.ask - quote.bid == pytest.approx(0.01)


def test_sizes_are_heavy_tailed_with_whales_and_prices_spike_and_cluster() -> None:
    market = SyntheticMarket(["BTCUSDT", "ETHUSDT"], 200, seed=5, start_us=START_US)
    cols = market.generate(400_000)  # about half an hour of trading
    notional = cols.price * cols.qty
    log_n = np.log(notional)
    # Heavy tail: whales (>= $100k) are far more common than a log-normal fit predicts.
    whales = (notional >= 100_000).mean()
    z = (math.log(100_000) - log_n.mean()) / log_n.std()
    lognormal_share = 0.5 * math.erfc(z / math.sqrt(2))
    assert (notional >= 100_000).sum() >= 100
    assert whales > 10 * lognormal_share
    assert notional.max() / np.median(notional) > 1_000
    # Price spikes: some 1-minute window moves by 2 % or more.
    btc = cols.symbol_idx == 0
    minute = cols.ts_us[btc] // 60_000_000
    price = cols.price[btc]
    heads = np.flatnonzero(np.diff(minute, prepend=-1))
    tails = np.append(heads[1:], len(minute)) - 1
    moves = np.abs(price[tails] / price[heads] - 1)
    assert moves.max() >= 0.02
    # Volatility clusters: absolute per-second returns are autocorrelated.
    per_second = np.unique(cols.ts_us[btc] // 1_000_000, return_index=True)[1]
    r = np.abs(np.diff(np.log(price[per_second])))
    assert np.corrcoef(r[:-1], r[1:])[0, 1] > 0.05
    # Bursty arrivals: more than a Poisson process's variance of counts per second.
    counts = np.bincount(cols.ts_us[btc] // 1_000_000 - cols.ts_us[btc][0] // 1_000_000)
    assert counts.var() > 2 * counts.mean()


def test_bulk_generate_is_vectorized_and_matches_the_trade_schema() -> None:
    market = SyntheticMarket(SYMBOLS, 50_000, seed=2, start_us=START_US)
    cols = market.generate(200_000)
    assert len(cols) == 200_000
    assert np.all(np.diff(cols.ts_us) >= 0)
    table = cols.to_arrow()
    assert table.schema == TRADE_SCHEMA
    first = from_table(table.slice(0, 50), Trade)
    assert first == cols.take(slice(0, 50)).to_trades()
    # `generate` continues the stream: the next batch picks up the ids where this one ended.
    more = market.generate(10)
    for i in range(len(cols.symbols)):
        if (more.symbol_idx == i).any() and (cols.symbol_idx == i).any():
            assert (
                more.trade_id[more.symbol_idx == i][0]
                == cols.trade_id[cols.symbol_idx == i][-1] + 1
            )


@pytest.mark.parametrize("suffix", [".recv", ".recv.gz"])
def test_written_frames_parse_back_to_exactly_the_same_trades(tmp_path: Path, suffix: str) -> None:
    cols = SyntheticMarket(SYMBOLS, 1000, seed=9, start_us=START_US).generate(20_000)
    path = tmp_path / f"trades{suffix}"
    write_trade_frames(cols, path)
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "rb") as f:
        lines = f.read().splitlines()
    assert len(lines) == len(cols)
    first = lines[0].split(b" ", 1)[1]
    assert (
        first.startswith(b'{"stream":"')
        and b'"e":"trade"' in first
        and first.endswith(b'"M":true}}')
    )
    expected = cols.to_trades()
    symbols = SymbolMap()
    parsed = []
    for line, want in zip(lines, expected, strict=True):
        recv_ns, frame = line.split(b" ", 1)
        trade = parse_frame(frame, symbols, want.ts_recv)
        assert isinstance(trade, Trade)
        assert int(recv_ns) // 1000 >= trade.ts_event
        parsed.append(trade)
    assert parsed == expected  # prices, sizes, sides, ids and times all round-trip exactly


def test_trade_history_is_bounded_and_keeps_ids_addressable() -> None:
    cols = SyntheticMarket(["BTCUSDT"], 1000, seed=4, start_us=START_US).generate(30_000)
    history = TradeHistory(max_trades=10_000)
    maker = cols.buyer_maker.astype(np.int64)
    for lo in range(0, 30_000, 1000):
        part = slice(lo, lo + 1000)
        history.append(
            cols.trade_id[part], cols.price_units[part], cols.qty_units[part],
            cols.ts_us[part] // 1000, maker[part],
        )  # fmt: skip
    assert len(history) <= 10_000
    assert history.last_id == int(cols.trade_id[-1])
    start = history.index_of_id(int(cols.trade_id[-50]))
    got = history.trades_json(start, start + 5)
    assert [t["id"] for t in got] == cols.trade_id[-50:-45].tolist()
    aggs = history.aggregate(start, len(history), 1000)
    assert sum(a["l"] - a["f"] + 1 for a in aggs) == 50  # type: ignore[operator]


def test_recorded_feed_replays_frames_byte_for_byte_and_builds_rest_history() -> None:
    feed = RecordedFeed(RECORDING, shift_times=False, speed=1000.0)
    frames = feed.poll(1_000_000)
    frames += feed.poll(1_000_000 + 2_000_000)  # 2 s at 1000x: the whole recording
    trades = [f for f in frames if f[2] is not None]
    assert len(trades) > 9000
    with gzip.open(RECORDING, "rb") as f:
        for line in f:
            if b'"btcusdt@trade"' in line:
                first = line.split(b" ", 1)[1].rstrip()
                break
    assert b'{"stream":"btcusdt@trade","data":' + trades[0][1] + b"}" == first
    truth = feed.ground_truth()
    assert len(truth) == len({f[2] for f in trades})
    history = feed.history("BTC-USDT")
    assert history is not None and history.first_id == trades[0][2][1]  # type: ignore[index]


def test_fault_plan_parses_cli_text_and_rejects_nonsense() -> None:
    plan = FaultPlan.parse("disconnect=3,dup=0.01,429=0.2,retry_after=5,seed=4")
    assert plan.disconnect_every_s == 3.0 and plan.duplicate_prob == 0.01
    assert plan.rest_429_prob == 0.2 and plan.retry_after_s == 5 and plan.seed == 4
    assert FaultPlan.parse("none") == FaultPlan() and not FaultPlan().any
    chaos = FaultPlan.parse("chaos,drop=0")
    assert chaos.any and chaos.drop_prob == 0 and chaos.disconnect_every_s == 20.0
    with pytest.raises(ValueError, match="unknown fault"):
        FaultPlan.parse("explode=1")
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        FaultPlan.parse("drop=2")
