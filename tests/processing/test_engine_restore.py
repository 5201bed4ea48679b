"""The candle engine across a restart: restored from what a sink stored (positions, and the
open windows with their first and last trades' event times, as `CandleEngine.restore` takes
them), it must go on exactly as an engine that never stopped. The uninterrupted engine is
the independent computation every restarted batch is compared with, on both paths (plain
Python rows, and polars for large batches)."""

import pyarrow as pa
import pytest

from marketpipe.config import AlertSettings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Alert, Candle, Position, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, from_table, to_table
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine

MIN = 60_000_000
S = 1_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
GRACE = 10 * S
LATENESS = 10 * MIN

PATHS = pytest.mark.parametrize("row_path_max", [10**9, 0], ids=["row-path", "polars-path"])


def engine(row_path_max: int) -> CandleEngine:
    # Eight minutes of spike history (no more than the lateness, so a restart keeps all of
    # it), a 2x multiple, an absolute spike and a whale threshold the trades below reach.
    alerts = AlertSettings(
        whale_notional=50_000.0, volume_spike_quote=40_000.0, volume_spike_multiple=2.0,
        volume_spike_history_min=8, price_spike_pct=0.02,
    )  # fmt: skip
    return CandleEngine(
        AlertRules(alerts), grace_us=GRACE, allowed_lateness_us=LATENESS,
        row_path_max=row_path_max,
    )  # fmt: skip


def trade(exchange: str, symbol: str, trade_id: int, ts: int, price: float, qty: float) -> Trade:
    side = "buy" if trade_id % 3 else "sell"
    return Trade(exchange, symbol, trade_id, price, qty, side, ts, ts)  # type: ignore[arg-type]


def stream() -> tuple[list[list[Trade]], list[list[Trade]]]:
    """Batches before and after the restart, for two exchanges and two symbols."""
    before: list[Trade] = []
    ids = {"BTC-USDT": 0, "ETH-USDT": 0}
    for m in range(20):  # binance, minutes 0..19
        for symbol, base in (("BTC-USDT", 100.0), ("ETH-USDT", 50.0)):
            for k, sec in enumerate((5, 25, 45)):
                ids[symbol] += 1
                if symbol == "BTC-USDT" and ids[symbol] == 20:
                    ids[symbol] += 3  # a gap: ids 20..22 arrive only after the restart
                price = base + (m % 4) * 0.25 + k * 0.125
                before.append(trade("binance", symbol, ids[symbol], T0 + m * MIN + sec * S,
                                    price, 1.0 + (m % 3)))  # fmt: skip
    # Two trades in one event-time microsecond, delivered in reverse id order.
    before.append(trade("binance", "BTC-USDT", 101, T0 + 19 * MIN + 50 * S, 101.0, 1.0))
    before.insert(-1, trade("binance", "BTC-USDT", 102, T0 + 19 * MIN + 50 * S, 102.0, 1.0))
    # binance's last trade before the restart: 20:10, so its watermark is 20:00.
    before.append(trade("binance", "ETH-USDT", 200, T0 + 20 * MIN + 10 * S, 50.0, 1.0))
    # coinbase lags: its last trade is 12:55 (watermark 12:45), so the recovery horizon is
    # coinbase's, and the sink hands back binance windows that have already expired.
    coinbase = [
        trade("coinbase", "BTC-USDT", i, T0 + (i // 2) * MIN + (15 + 40 * (i % 2)) * S,
              100.0 + i * 0.125, 0.5)
        for i in range(26)
    ]  # fmt: skip
    everything = sorted(before + coinbase, key=lambda t: t.ts_recv)
    batches = [everything[i : i + 17] for i in range(0, len(everything), 17)]
    batches[5] += batches[3][:4]  # redelivered before the restart: duplicates to carry over
    # A late trade revises binance's final 16:00 minute before the restart (revision 1).
    batches[-1].append(trade("binance", "BTC-USDT", 103, T0 + 16 * MIN + 30 * S, 99.0, 1.0))

    after = [
        batches[-2] + batches[-1],  # redelivered: all duplicates, only restored ledgers know
        [
            trade("binance", "BTC-USDT", 21, T0 + 9 * MIN + 30 * S, 100.0, 1.0),  # too late
            trade("binance", "BTC-USDT", 20, T0 + 11 * MIN + 30 * S, 140.0, 1.0),  # revision
            trade("binance", "BTC-USDT", 22, T0 + 19 * MIN + 55 * S, 90.0, 1.0),  # revision
            trade("binance", "BTC-USDT", 104, T0 + 16 * MIN + 40 * S, 98.0, 1.0),  # revision 2
            trade("binance", "ETH-USDT", 201, T0 + 20 * MIN + 20 * S, 51.0, 2.0),  # open
            trade("coinbase", "BTC-USDT", 9, T0 + 4 * MIN + 59 * S, 101.0, 1.0),  # duplicate
        ],
        [  # the next minutes: a relative volume spike, a price spike and a whale
            trade("binance", "BTC-USDT", 300, T0 + 20 * MIN + 30 * S, 100.0, 30.0),
            trade("binance", "BTC-USDT", 301, T0 + 20 * MIN + 40 * S, 104.0, 1.0),
            trade("binance", "ETH-USDT", 302, T0 + 21 * MIN + 5 * S, 50.0, 1_200.0),
            trade("coinbase", "BTC-USDT", 40, T0 + 13 * MIN + 30 * S, 100.0, 1.0),
            trade("binance", "BTC-USDT", 303, T0 + 22 * MIN + 30 * S, 100.0, 1.0),
        ],
    ]
    return batches, after


class Sink:
    """What a warm store keeps of committed batches: candles by window, trades by id,
    positions by symbol; `open_windows` answers as the stores do."""

    def __init__(self) -> None:
        self.candles: dict[tuple[str, str, str, int], Candle] = {}
        self.trades: dict[tuple[str, str, int], int] = {}
        self.positions: dict[tuple[str, str], Position] = {}

    def commit(self, batch: CommitBatch) -> None:
        for c in batch.candles:
            self.candles[(c.exchange, c.symbol, c.interval, c.open_time)] = c
        for t in from_table(batch.trades, Trade):
            self.trades.setdefault((t.exchange, t.symbol, t.trade_id), t.ts_event)
        for p in batch.positions:
            self.positions[(p.exchange, p.symbol)] = p

    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]:
        return [
            (c, self.trades[(c.exchange, c.symbol, c.first_trade_id)],
             self.trades[(c.exchange, c.symbol, c.last_trade_id)])
            for c in self.candles.values()
            if c.close_time > min_close_time
        ]  # fmt: skip


def table(trades: list[Trade]) -> pa.Table:
    return to_table(trades, TRADE_SCHEMA)


def summary(batch: CommitBatch) -> tuple[object, ...]:
    candles = sorted(batch.candles, key=lambda c: (c.exchange, c.symbol, c.interval, c.open_time))
    alerts: list[Alert] = sorted(batch.alerts, key=lambda a: a.alert_id)
    trades = sorted(batch.trades.column("trade_id").to_pylist())
    late = sorted(batch.late_trades.column("trade_id").to_pylist())
    return candles, alerts, trades, late, batch.duplicates, batch.positions


def restart(row_path_max: int) -> tuple[CandleEngine, CandleEngine, list[list[Trade]]]:
    """An engine that never stops, and one restored from a sink after the same batches."""
    batches, after = stream()
    steady, first = engine(row_path_max), engine(row_path_max)
    sink = Sink()
    for batch in batches:
        steady.process(table(batch))
        sink.commit(first.process(table(batch)))
    positions = [sink.positions[k] for k in sorted(sink.positions)]
    restored = engine(row_path_max)
    horizon = restored.recovery_horizon(positions)
    assert horizon is not None
    restored.restore(positions, sink.open_windows(horizon))
    return steady, restored, after


@PATHS
def test_a_restored_engine_continues_exactly_as_one_that_never_stopped(row_path_max: int) -> None:
    steady, restored, after = restart(row_path_max)
    assert restored.positions() == sorted(steady.positions(), key=lambda p: p.exchange)
    assert restored.watermarks() == steady.watermarks()
    assert restored.open_windows == steady.open_windows
    for batch in after:
        expected = steady.process(table(batch))
        assert summary(restored.process(table(batch))) == summary(expected)
        assert restored.watermarks() == steady.watermarks()
        assert restored.open_windows == steady.open_windows
    for exchange in ("binance", "coinbase"):
        expected = steady.advance_watermark(exchange, T0 + 40 * MIN)
        assert summary(restored.advance_watermark(exchange, T0 + 40 * MIN)) == summary(expected)
    assert summary(restored.flush()) == summary(steady.flush())


@PATHS
def test_the_batches_after_the_restart_exercise_what_a_restore_must_carry(
    row_path_max: int,
) -> None:
    """The comparison above has teeth: checked here by hand on the uninterrupted engine."""
    steady, _, after = restart(row_path_max)
    redelivered = steady.process(table(after[0]))
    assert redelivered.trades.num_rows == 0 and redelivered.duplicates == len(after[0])
    # coinbase's 12:00 window closes at 13:00, within grace of its watermark (12:45).
    assert not [c for c in redelivered.candles if c.is_final]
    late = steady.process(table(after[1]))
    assert late.late_trades.column("trade_id").to_pylist() == [21]
    revised = {(c.symbol, c.interval, c.open_time): c for c in late.candles}
    assert revised[("BTC-USDT", "1m", T0 + 11 * MIN)].revision == 1
    assert revised[("BTC-USDT", "1m", T0 + 19 * MIN)].revision == 1
    assert revised[("BTC-USDT", "1m", T0 + 16 * MIN)].revision == 2
    [btc] = [p for p in late.positions if (p.exchange, p.symbol) == ("binance", "BTC-USDT")]
    # Revisions fall on minutes that start no rollup: a final 5m or 15m candle taken for a
    # minute (which shares its open time) would not be overwritten again after the restart.
    # Two holes were found (20..22, and 64..100 below the tied pair); 20..22 is now filled.
    assert (btc.gaps_found, btc.gaps_filled, btc.id_ranges) == (2, 1, [(1, 63), (101, 104)])
    spikes = steady.process(table(after[2]))
    kinds = sorted((a.kind, a.symbol, a.ts) for a in spikes.alerts)
    assert kinds == [
        ("price_spike", "BTC-USDT", T0 + 20 * MIN),
        ("price_spike", "ETH-USDT", T0 + 20 * MIN),
        ("volume_spike", "BTC-USDT", T0 + 20 * MIN),
        ("volume_spike", "ETH-USDT", T0 + 21 * MIN),
        ("whale_trade", "ETH-USDT", T0 + 21 * MIN + 5 * S),
    ]
    relative = [a for a in spikes.alerts if a.kind == "volume_spike" and a.symbol == "BTC-USDT"]
    assert '"basis":"relative"' in relative[0].details


@pytest.mark.xfail(
    strict=True,
    reason="bug: a restart re-arms the relative volume rule only from the oldest restored "
    "final minute, so a quiet first minute of the trailing history disarms it",
)
def test_a_restart_keeps_the_relative_volume_rule_armed_over_a_quiet_minute() -> None:
    """History of four minutes, lateness of four minutes (as the defaults, 60 and 60). Minute
    4 is quiet; after a restart at 08:30 the oldest restored final minute is 5, so the rule
    no longer knows it has run since 00:00 and minute 8's spike (over the mean of minutes
    4..7, the quiet one counting as zero) goes unreported. The uninterrupted engine fires."""

    def make() -> CandleEngine:
        alerts = AlertSettings(volume_spike_history_min=4, volume_spike_multiple=2.0)
        return CandleEngine(AlertRules(alerts), grace_us=0, allowed_lateness_us=4 * MIN)

    def at(trade_id: int, minute: int, qty: float = 1.0) -> Trade:
        return trade("binance", "BTC-USDT", trade_id, T0 + minute * MIN + 30 * S, 100.0, qty)

    before = [at(m + 1, m) for m in (0, 1, 2, 3, 5, 6, 7)] + [at(9, 8, qty=50.0)]
    after = [at(10, 9)]
    steady, first = make(), make()
    steady.process(table(before))
    sink = Sink()
    sink.commit(first.process(table(before)))
    restored = make()
    positions = list(sink.positions.values())
    horizon = restored.recovery_horizon(positions)
    assert horizon is not None
    restored.restore(positions, sink.open_windows(horizon))
    expected = steady.process(table(after)).alerts
    assert [(a.kind, a.ts) for a in expected] == [("volume_spike", T0 + 8 * MIN)]
    assert restored.process(table(after)).alerts == expected
