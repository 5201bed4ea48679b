"""The venue_divergence rule on final 1m candles: thresholds, durations, finality across
venues and episodes, each boundary on its own. Prices are chosen so bps are exact."""

import itertools
import json
import statistics

import pytest

from marketpipe.config import AlertSettings
from marketpipe.model.records import Alert, Candle
from marketpipe.processing.alert_ids import alert_id
from marketpipe.processing.divergence import DivergenceRule

MIN = 60_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
VENUES = {"binance": "BTC-USDT", "coinbase": "BTC-USD", "kraken": "BTC-USD"}


def candle(exchange: str, minute: int, close: float, symbol: str | None = None) -> Candle:
    t = T0 + minute * MIN
    return Candle(
        exchange, symbol or VENUES[exchange], "1m", t, t + MIN, close, close, close, close,
        1.0, close, 1, 0.0, 0.0, close, 1, 1, True, 0,
    )  # fmt: skip


def rule(bps: float = 50.0, seconds: float = 120.0, venues: int = 3) -> DivergenceRule:
    return DivergenceRule(
        AlertSettings(divergence_bps=bps, divergence_s=seconds, divergence_min_venues=venues)
    )


def everyone_final_after(minute: int) -> dict[str, int]:
    """Watermarks at which every venue's minute `minute` (and all before) is final."""
    return dict.fromkeys(VENUES, T0 + (minute + 1) * MIN)


def run(r: DivergenceRule, kraken_closes: list[float], others: float = 10_000.0) -> list[Alert]:
    """Binance and Coinbase at `others`, Kraken at its closes, minute by minute."""
    alerts: list[Alert] = []
    for minute, close in enumerate(kraken_closes):
        r.remember(candle("binance", minute, others))
        r.remember(candle("coinbase", minute, others))
        r.remember(candle("kraken", minute, close))
        alerts += r.judge(everyone_final_after(minute))
    return alerts


def test_one_alert_per_episode_once_it_lasted_the_duration() -> None:
    # 10_060 is +60 bps of the others' median 10_000, for minutes 2..5.
    alerts = run(rule(), [10_000, 10_000, 10_060, 10_060, 10_060, 10_060, 10_000])
    [alert] = alerts
    assert (alert.kind, alert.exchange, alert.symbol) == ("venue_divergence", "kraken", "BTC-USD")
    assert alert.ts == T0 + 2 * MIN  # the episode's first minute
    assert alert.alert_id == alert_id("venue_divergence", "kraken", "BTC-USD", T0 + 2 * MIN)
    assert alert.value == pytest.approx(60.0) and alert.threshold == 50.0
    details = json.loads(alert.details)
    assert details["judged_minute"] == T0 + 3 * MIN  # fired on the episode's second minute
    assert details["median_of_others"] == 10_000.0
    assert details["venues"] == ["binance", "coinbase", "kraken"]


def test_exactly_the_threshold_is_not_divergent_and_just_above_is() -> None:
    assert run(rule(), [10_050.0] * 4) == []  # +50 bps exactly: not more than 50
    assert len(run(rule(), [10_050.01] * 4)) == 1
    assert len(run(rule(), [9_949.99] * 4)) == 1  # below the others, as well as above


def test_the_duration_is_whole_minutes_rounded_up() -> None:
    assert run(rule(seconds=120), [10_100.0]) == []  # one minute is not two
    assert len(run(rule(seconds=120), [10_100.0] * 2)) == 1
    assert run(rule(seconds=121), [10_100.0] * 2) == []  # 121 s needs three minutes
    assert len(run(rule(seconds=121), [10_100.0] * 3)) == 1
    assert len(run(rule(seconds=60), [10_100.0])) == 1


def test_a_new_episode_after_a_calm_minute_fires_again_with_its_own_id() -> None:
    alerts = run(rule(), [10_100, 10_100, 10_100, 10_000, 10_100, 10_100])
    assert [a.ts for a in alerts] == [T0, T0 + 4 * MIN]
    assert len({a.alert_id for a in alerts}) == 2


def test_two_venues_are_not_enough_to_say_which_one_departed() -> None:
    r = rule()
    for minute in range(4):
        r.remember(candle("binance", minute, 10_000))
        r.remember(candle("kraken", minute, 10_500))
    assert r.judge(everyone_final_after(3)) == []
    r = rule(venues=2)  # with two allowed, each is judged against the other
    for minute in range(2):
        r.remember(candle("binance", minute, 10_000))
        r.remember(candle("kraken", minute, 10_500))
    assert sorted(a.exchange for a in r.judge(everyone_final_after(1))) == ["binance", "kraken"]


def test_a_minute_is_judged_only_once_every_venue_has_finalized_it() -> None:
    r = rule(seconds=60)
    r.remember(candle("binance", 0, 10_000))
    r.remember(candle("coinbase", 0, 10_000))
    r.remember(candle("kraken", 0, 10_100))
    end = T0 + MIN
    marks = {"binance": end, "coinbase": end, "kraken": end - 1}
    assert r.judge(marks) == []  # Kraken's minute 0 could still change
    assert r.judge({**marks, "kraken": end})[0].ts == T0  # its end at the watermark: final
    assert r.judge({"binance": end, "coinbase": end}) == []  # judged once, never again


def test_a_venue_without_a_watermark_holds_the_asset_back() -> None:
    r = rule(seconds=60)
    for exchange, close in (("binance", 10_000), ("coinbase", 10_000), ("kraken", 10_100)):
        r.remember(candle(exchange, 0, close))
    assert r.judge({"binance": T0 + MIN, "coinbase": T0 + MIN}) == []


def test_a_quiet_venue_keeps_its_last_close_for_five_minutes_then_drops_out() -> None:
    r = rule(seconds=60)
    r.remember(candle("kraken", 0, 10_100))  # Kraken trades once, +100 bps
    alerts = []
    for minute in range(8):
        r.remember(candle("binance", minute, 10_000))
        r.remember(candle("coinbase", minute, 10_000))
        alerts += r.judge(everyone_final_after(minute))
    [alert] = alerts
    assert json.loads(alert.details)["minutes"] == 1
    # Kraken's close counts in minutes 0..5 (an episode of six minutes), not from minute 6 on:
    r2 = rule(seconds=360)
    r2.remember(candle("kraken", 0, 10_100))
    fired = []
    for minute in range(8):
        r2.remember(candle("binance", minute, 10_000))
        r2.remember(candle("coinbase", minute, 10_000))
        fired += r2.judge(everyone_final_after(minute))
    assert [json.loads(a.details)["judged_minute"] for a in fired] == [T0 + 5 * MIN]
    assert run(rule(seconds=420), [10_100]) == []


def test_dollar_quotes_are_one_asset_and_other_quotes_are_apart() -> None:
    r = rule(seconds=60)
    r.remember(candle("binance", 0, 10_000, "BTC-USDT"))
    r.remember(candle("coinbase", 0, 10_000, "BTC-USDC"))
    r.remember(candle("kraken", 0, 9_000, "BTC-EUR"))  # a different asset: not compared
    assert r.judge(everyone_final_after(0)) == []  # two dollar venues: not enough yet
    r.remember(candle("kraken", 0, 10_100, "BTC-USD"))
    [alert] = r.judge(everyone_final_after(0))  # the minute waited for the third venue
    assert (alert.exchange, alert.symbol) == ("kraken", "BTC-USD")
    assert json.loads(alert.details)["venues"] == ["binance", "coinbase", "kraken"]


def test_a_stock_is_never_compared_with_a_crypto_of_the_same_spelling() -> None:
    """Finnhub's `BTC-USD` would be a stock ticker BTC: it neither joins BTC's median nor
    counts as its third venue."""
    r = rule(seconds=60)
    r.remember(candle("binance", 0, 10_000))
    r.remember(candle("coinbase", 0, 10_000))
    r.remember(candle("finnhub", 0, 10_100, "BTC-USD"))
    watermarks = {**everyone_final_after(0), "finnhub": T0 + MIN}
    assert r.judge(watermarks) == []  # two crypto venues: not enough to judge
    r.remember(candle("kraken", 0, 10_100))
    [alert] = r.judge(watermarks)
    assert (alert.exchange, json.loads(alert.details)["venues"]) == (
        "kraken", ["binance", "coinbase", "kraken"],
    )  # fmt: skip


def test_a_revision_before_judging_replaces_the_close() -> None:
    r = rule(seconds=60)
    r.remember(candle("binance", 0, 10_000))
    r.remember(candle("coinbase", 0, 10_000))
    r.remember(candle("kraken", 0, 10_100))
    r.remember(candle("kraken", 0, 10_000))  # revised before the minute was judged
    assert r.judge(everyone_final_after(0)) == []


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_alerts_do_not_depend_on_the_order_candles_and_judgements_come_in(
    order: tuple[int, ...],
) -> None:
    closes = {"binance": [10_000, 10_010, 9_990, 10_000], "coinbase": [10_005] * 4,
              "kraken": [10_080, 10_090, 10_070, 10_000]}  # fmt: skip
    r = rule()
    names = list(VENUES)
    alerts = []
    for i in order:  # each venue's whole history, one venue after another
        for minute, close in enumerate(closes[names[i]]):
            r.remember(candle(names[i], minute, close))
        alerts += r.judge({n: T0 + 4 * MIN for n in names[: i + 1]})
    alerts += r.judge(everyone_final_after(3))
    # The reference: minute by minute, the median of the other two, computed here.
    expected = []
    for exchange in names:
        run_start = None
        fired = False
        for minute in range(4):
            others = [closes[o][minute] for o in names if o != exchange]
            reference = statistics.median(others)
            if abs(closes[exchange][minute] - reference) / reference * 1e4 > 50:
                run_start = minute if run_start is None else run_start
                if minute - run_start + 1 >= 2 and not fired:
                    expected.append((exchange, T0 + run_start * MIN))
                    fired = True
            else:
                run_start, fired = None, False
    assert sorted((a.exchange, a.ts) for a in alerts) == sorted(expected) == [("kraken", T0)]


# ---- in the engine -------------------------------------------------------------------------


@pytest.mark.parametrize("row_path_max", [10**9, 0], ids=["row-path", "polars-path"])
def test_the_engine_fires_divergence_from_trades_of_three_venues(row_path_max: int) -> None:
    import pyarrow as pa

    from marketpipe.model.schemas import TRADE_SCHEMA
    from marketpipe.processing.alerts import AlertRules
    from marketpipe.processing.engine import CandleEngine

    engine = CandleEngine(
        AlertRules(AlertSettings(whale_notional=1e12)),
        grace_us=0, allowed_lateness_us=0, row_path_max=row_path_max,
    )  # fmt: skip
    # Kraken trades 80 bps above the others in minutes 1 and 2 (the default 50 bps, 120 s).
    prices = {"binance": [10_000.0] * 5, "coinbase": [10_000.0] * 5,
              "kraken": [10_000.0, 10_080.0, 10_080.0, 10_000.0, 10_000.0]}  # fmt: skip
    alerts = []
    for minute in range(5):
        rows = [
            (
                ex,
                VENUES[ex],
                2 * minute + k,
                prices[ex][minute],
                1.0,
                "buy",
                T0 + minute * MIN + (1 + 29 * k) * 1_000_000,
            )
            for ex in VENUES
            for k in (0, 1)
        ]
        table = pa.Table.from_pylist(
            [dict(zip(["exchange", "symbol", "trade_id", "price", "qty", "side", "ts_event"], r,
                      strict=True)) | {"ts_recv": r[6]} for r in rows],
            schema=TRADE_SCHEMA,
        )  # fmt: skip
        alerts += [a for a in engine.process(table).alerts if a.kind == "venue_divergence"]
    assert [(a.exchange, a.ts) for a in alerts] == [("kraken", T0 + MIN)]


# ---- what mutation testing asked for -------------------------------------------------------


def test_an_asset_waiting_for_a_venue_does_not_hold_back_the_others() -> None:
    r = rule(seconds=60)
    r.remember(candle("binance", 0, 2_000.0, "ETH-USDT"))  # ETH first: its venues lack marks
    r.remember(candle("coinbase", 0, 2_000.0, "ETH-USD"))
    r.remember(candle("okx", 0, 2_000.0, "ETH-USD"))
    r.remember(candle("binance", 0, 10_000))
    r.remember(candle("coinbase", 0, 10_000))
    r.remember(candle("kraken", 0, 10_100))
    [alert] = r.judge(everyone_final_after(0))  # okx has no watermark: only ETH waits
    assert alert.symbol == "BTC-USD"


def test_the_venue_count_includes_the_venue_itself_and_only_venues_with_a_price() -> None:
    r = rule(seconds=60)  # three listed, but Binance's last close is too old in minute 6
    r.remember(candle("binance", 0, 10_000))
    for minute in range(7):
        r.remember(candle("coinbase", minute, 10_000))
        r.remember(candle("kraken", minute, 10_000 if minute < 6 else 10_100))
    assert r.judge(everyone_final_after(6)) == []  # two priced venues are not three


def test_the_alert_carries_the_asset_its_episode_and_a_rounded_deviation() -> None:
    r = rule(bps=1.0, seconds=60)
    [alert] = run(r, [10_001.23456789])  # +1.23456789 bps
    assert alert.value == round(1.23456789, 6) != round(1.23456789, 7)
    details = json.loads(alert.details)
    assert (details["asset"], details["since"], details["price"]) == (
        "BTC-USD", T0, 10_001.23456789,
    )  # fmt: skip
    assert alert.severity == "warning"


def test_severity_is_critical_from_four_times_the_threshold() -> None:
    def kraken_at(close: float) -> str:
        # Four venues, so the others' median stays 10_000 for everyone but Kraken.
        r = rule(bps=25.0, seconds=60)
        for exchange, price in (("binance", 10_000), ("coinbase", 10_000), ("okx", 10_000)):
            r.remember(candle(exchange, 0, price, "BTC-USD"))
        r.remember(candle("kraken", 0, close))
        [alert] = r.judge(dict.fromkeys(["binance", "coinbase", "okx", "kraken"], T0 + MIN))
        return alert.severity

    assert kraken_at(10_100.0) == "critical"  # +100 bps = 4 x 25
    assert kraken_at(10_099.99) == "warning"


def test_a_close_six_minutes_old_is_not_a_price() -> None:
    r = rule(seconds=420)  # seven minutes: Kraken's close of minute 0 lasts for six (0..5)
    r.remember(candle("kraken", 0, 10_100))
    alerts = []
    for minute in range(9):
        r.remember(candle("binance", minute, 10_000))
        r.remember(candle("coinbase", minute, 10_000))
        alerts += r.judge(everyone_final_after(minute))
    assert alerts == []


def test_a_revision_after_judging_does_not_become_the_next_minutes_stale_price() -> None:
    r = rule(seconds=60)
    for exchange in VENUES:
        r.remember(candle(exchange, 0, 10_000))
    assert r.judge(everyone_final_after(0)) == []
    r.remember(candle("kraken", 0, 10_100))  # minute 0 revised after it was judged
    r.remember(candle("binance", 1, 10_000))
    r.remember(candle("coinbase", 1, 10_000))
    assert r.judge(everyone_final_after(1)) == []  # minute 1 takes Kraken's judged close


def test_an_asset_with_too_few_venues_does_not_hold_back_the_others() -> None:
    r = rule(seconds=60)
    r.remember(candle("binance", 0, 2_000.0, "ETH-USDT"))  # two venues: never judged
    r.remember(candle("coinbase", 0, 2_100.0, "ETH-USD"))
    r.remember(candle("binance", 0, 10_000))
    r.remember(candle("coinbase", 0, 10_000))
    r.remember(candle("kraken", 0, 10_100))
    assert [a.symbol for a in r.judge(everyone_final_after(0))] == ["BTC-USD"]


def test_the_minute_after_the_watermark_is_not_judged_yet() -> None:
    r = rule(seconds=120)
    for exchange, close in (("binance", 10_000), ("coinbase", 10_000), ("kraken", 10_100)):
        r.remember(candle(exchange, 0, close))
    # Only minute 0 is final; judging minute 1 early would count Kraken's stale close twice.
    assert r.judge(everyone_final_after(0)) == []
