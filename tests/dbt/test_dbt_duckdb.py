"""The dbt project on the duckdb target (embedded mode), over replayed real and synthetic data.

Values are checked against plain SQL over the raw recorded frames (harness/reference.py parses
them with the standard library), never against what the marts produced."""

import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from harness.reference import raw_trades, reference_hours
from marketpipe.model.records import MarketSnapshot
from marketpipe.model.symbols import comparable_asset
from marketpipe.serving.routes_marts import DuckDBMarts, marts_router
from tests.conftest import BINANCE_08, BINANCE_09
from tests.dbt.conftest import BuiltMarts
from tests.dbt.warehouse import (
    CROSS_VENUE_START_US,
    HOUR_US,
    MARKET_SNAPSHOTS,
    copy_data_dir,
    cross_venue_trades,
    dbt,
    more_synthetic_trades,
    replay_into,
)

# dbt and Airflow runs take minutes when the machine is busy.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

# Documented facts of the recording (tests/data/README.md): first and last trade prices.
FIRST_PRICE = 61837.63
LAST_PRICE = 61602.02


def marts(data_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con


def test_build_passes_with_every_test_counted(built_marts: BuiltMarts) -> None:
    output = built_marts.result.output
    done = re.search(
        r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+) NO-OP=\d+ TOTAL=(\d+)", output
    )
    assert done, output[-2000:]
    passed, warned, errors, skipped, total = map(int, done.groups())
    assert (warned, errors, skipped) == (0, 0, 0)
    assert passed == total
    target = built_marts.data_dir / "dbt" / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    results = json.loads((target / "run_results.json").read_text())["results"]
    declared_tests = {
        *(k for k in manifest["nodes"] if k.startswith("test.")),
        *manifest.get("unit_tests", {}),
    }
    ran = {r["unique_id"]: r["status"] for r in results}
    assert declared_tests <= set(ran), declared_tests - set(ran)
    assert {ran[t] for t in declared_tests} == {"pass"}
    # unit tests for VWAP, volatility and drawdown, and the mart-vs-candles test are among them
    names = " ".join(declared_tests)
    for expected in (
        "vwap",
        "volatility",
        "drawdown",
        "assert_hourly_summary_matches",
        "cross_venue_shares",
        "cross_venue_spread",
        "assert_cross_venue_marts",
        "assert_market_cap_mart",
    ):
        assert expected in names
    assert len(declared_tests) >= 100
    models = {k.rsplit(".", 1)[-1] for k in manifest["nodes"] if k.startswith("model.")}
    assert {"cross_venue_hourly", "cross_venue_volume_share_hourly"} <= models
    assert {"stg_marketpipe__market_snapshots", "volume_share_of_market_cap_hourly"} <= models
    assert {"cross_venue_hourly", "cross_venue_volume_share_hourly"} <= {
        r["unique_id"].rsplit(".", 1)[-1] for r in results if r["status"] == "success"
    }


def test_hourly_summary_equals_sql_over_raw_frames(built_marts: BuiltMarts) -> None:
    expected = reference_hours(raw_trades([BINANCE_08, BINANCE_09]), "BTCUSDT")
    got = (
        marts(built_marts.data_dir)
        .execute(
            """
            SELECT epoch(hour_start)::BIGINT, open_price, high_price, low_price, close_price,
                   vwap, base_volume, trade_count, completeness_pct
            FROM marts.trading_summary_hourly WHERE symbol = 'BTC-USDT' ORDER BY hour_start
            """
        )
        .fetchall()
    )
    assert len(got) == len(expected) == 2  # 23:54-00:05 UTC spans two hours
    for mine, ref in zip(got, expected, strict=True):
        assert mine[:5] == ref[:5]  # hour, open, high, low, close: exact
        assert mine[5] == pytest.approx(ref[5], rel=1e-12)  # VWAP = Σp·q / Σq
        assert mine[6] == pytest.approx(ref[6], rel=1e-12)
        assert mine[7] == ref[7]
        assert mine[8] == ref[8] == 100.0
    assert got[0][1] == FIRST_PRICE
    assert got[-1][4] == LAST_PRICE


def test_daily_quality_and_overview_match_raw_frames(built_marts: BuiltMarts) -> None:
    rows = raw_trades([BINANCE_08, BINANCE_09])
    con = marts(built_marts.data_dir)
    quality = con.execute(
        "SELECT sum(stored_trades), sum(expected_trades), min(completeness_pct) "
        "FROM marts.data_quality_daily WHERE symbol = 'BTC-USDT'"
    ).fetchone()
    ids = [r[1] for r in rows]
    assert quality == (len(rows), max(ids) - min(ids) + 1, 100.0)
    overview = con.execute(
        "SELECT last_price, base_volume_24h, trade_count_24h FROM marts.market_overview "
        "WHERE symbol = 'BTC-USDT'"
    ).fetchone()
    assert overview is not None
    assert overview[0] == LAST_PRICE
    assert overview[1] == pytest.approx(sum(r[3] for r in rows), rel=1e-12)
    assert overview[2] == len(rows)
    ranked = con.execute("SELECT exchange, symbol FROM marts.market_overview ORDER BY volume_rank")
    assert sorted(ranked.fetchall()) == [
        ("binance", s) for s in ("BTC-USDC", "BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")
    ] + [("coinbase", "BTC-USD"), ("kraken", "BTC-EUR"), ("kraken", "BTC-USD")]


def test_synthetic_days_are_summarized_per_symbol_and_day(built_marts: BuiltMarts) -> None:
    con = marts(built_marts.data_dir)
    per_symbol = con.execute(
        """
        SELECT symbol, count(*), sum(trade_count), min(completeness_pct)
        FROM marts.trading_summary_daily WHERE symbol IN ('ETH-USDT', 'SOL-USDT', 'XRP-USDT')
        GROUP BY symbol ORDER BY 1
        """
    ).fetchall()
    stored = dict(
        duckdb.connect()
        .execute(
            "SELECT symbol, count(*) FROM read_parquet(?) GROUP BY symbol",
            [str(built_marts.data_dir / "dbt" / "inputs" / "trades_recent.parquet")],
        )
        .fetchall()
    )
    assert [r[0] for r in per_symbol] == ["ETH-USDT", "SOL-USDT", "XRP-USDT"]
    for symbol, days, trades, completeness in per_symbol:
        assert days >= 3  # three days of data touch three or four UTC dates
        assert trades == stored[symbol]
        assert completeness == 100.0
    volatility = con.execute(
        "SELECT count(*) FROM marts.trading_summary_daily "
        "WHERE symbol IN ('ETH-USDT', 'SOL-USDT', 'XRP-USDT') "
        "AND realized_volatility > 0 AND max_drawdown >= 0"
    ).fetchone()
    assert volatility is not None and volatility[0] >= 9


def _cross_venue_reference() -> dict[tuple[str, int, str], list[float]]:
    """Plain Python over the raw trades (the recorded frames, parsed by harness/reference.py,
    and the capture's rows): (asset, hour µs, exchange) -> [base, quote, trades, symbols]."""
    trades = [("binance", "BTC-USDT", r[2], r[3], r[5] * 1000)
              for r in raw_trades([BINANCE_08, BINANCE_09])]  # fmt: skip
    trades += [(t.exchange, t.symbol, t.price, t.qty, t.ts_event) for t in cross_venue_trades()]
    venues: dict[tuple[str, int, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0, 0])
    symbols: dict[tuple[str, int, str], set[str]] = defaultdict(set)
    for exchange, symbol, price, qty, ts in trades:
        asset = comparable_asset(symbol)
        assert asset is not None
        key = (asset, ts - ts % HOUR_US, exchange)
        venue = venues[key]
        venue[0] += qty
        venue[1] += price * qty
        venue[2] += 1
        symbols[key].add(symbol)
        venue[3] = len(symbols[key])
    return dict(venues)


def _hour(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC)


def test_cross_venue_marts_equal_python_over_the_raw_trades(built_marts: BuiltMarts) -> None:
    venues = _cross_venue_reference()
    con = marts(built_marts.data_dir)
    shares = con.execute(
        """
        SELECT asset, hour_start, exchange, base_volume, quote_volume, trade_count, symbol_count,
               venue_count, vwap, cross_venue_vwap, volume_share, vwap_vs_cross_venue_bps,
               volume_rank
        FROM marts.cross_venue_volume_share_hourly WHERE asset IN ('BTC-USD', 'BTC-EUR')
        ORDER BY asset, hour_start, exchange
        """
    ).fetchall()
    assert [(a, h, e) for a, h, e, *_ in shares] == [(a, _hour(h), e) for a, h, e in sorted(venues)]
    hours: dict[tuple[str, int], list[tuple[str, list[float]]]] = defaultdict(list)
    for (asset, hour, exchange), venue in sorted(venues.items()):
        hours[asset, hour].append((exchange, venue))
    approx = {"rel": 1e-9, "abs": 1e-9}
    for row, (key, (base, quote, count, n_symbols)) in zip(
        shares, sorted(venues.items()), strict=True
    ):
        peers = hours[key[0], key[1]]
        total_base = sum(v[0] for _, v in peers)
        total_quote = sum(v[1] for _, v in peers)
        cross = total_quote / total_base
        by_volume = sorted(peers, key=lambda p: (-p[1][1], p[0]))
        expected = (base, quote, count, n_symbols, len(peers), quote / base, cross,
                    quote / total_quote, 10_000 * (quote / base / cross - 1))  # fmt: skip
        assert row[5:8] == (count, n_symbols, len(peers)), row
        assert row[3:5] == pytest.approx(expected[:2], rel=1e-12), row
        assert row[8:12] == pytest.approx(expected[5:], **approx), row
        assert row[12] == 1 + [e for e, _ in by_volume].index(key[2])

    summary = con.execute(
        """
        SELECT asset, hour_start, hour_end, venue_count, trade_count, base_volume, quote_volume,
               vwap, highest_vwap, highest_vwap_exchange, lowest_vwap, lowest_vwap_exchange,
               vwap_spread, spread_bps, leading_exchange, leading_volume_share
        FROM marts.cross_venue_hourly WHERE asset IN ('BTC-USD', 'BTC-EUR')
        ORDER BY asset, hour_start
        """
    ).fetchall()
    assert [(a, h) for a, h, *_ in summary] == [(a, _hour(h)) for a, h in sorted(hours)]
    for row, ((_asset, hour), peers) in zip(summary, sorted(hours.items()), strict=True):
        base = sum(v[0] for _, v in peers)
        quote = sum(v[1] for _, v in peers)
        vwaps = {e: v[1] / v[0] for e, v in peers}
        high = max(vwaps.values())
        low = min(vwaps.values())
        leader = min(peers, key=lambda p: (-p[1][1], p[0]))
        assert row[2] == _hour(hour + HOUR_US)
        assert row[3:5] == (len(peers), sum(v[2] for _, v in peers))
        assert row[5:7] == pytest.approx((base, quote), rel=1e-12)
        assert row[7] == pytest.approx(quote / base, rel=1e-12)
        assert (row[8], row[10]) == pytest.approx((high, low), rel=1e-12)
        assert row[9] == min(e for e, v in vwaps.items() if v == high)
        assert row[11] == min(e for e, v in vwaps.items() if v == low)
        assert row[12:14] == pytest.approx((high - low, 10_000 * (high - low) / (quote / base)),
                                           **approx)  # fmt: skip
        assert row[14] == leader[0]
        assert row[15] == pytest.approx(leader[1][1] / quote, rel=1e-12)

    # Facts of the capture, by construction: venues per hour, one venue for two dollar
    # quotes, and the trades on both sides of midnight in their own hours.
    start = CROSS_VENUE_START_US
    counts = {(a, h): n for a, h, _, n, *_ in summary}
    assert counts == {
        **{("BTC-USD", _hour(start + i * HOUR_US)): n for i, n in enumerate((2, 3, 3, 1))},
        ("BTC-EUR", _hour(start + HOUR_US)): 1,
        ("BTC-EUR", _hour(start + 2 * HOUR_US)): 1,
    }
    by_key = {(a, h, e): r for a, h, e, *r in shares}
    midnight = _hour(start + 2 * HOUR_US)
    before = _hour(start + HOUR_US)
    assert by_key["BTC-USD", midnight, "binance"][3] == 2  # BTC-USDT and BTC-USDC
    assert by_key["BTC-USD", midnight, "coinbase"][2] == 6  # 5 + the trade at 00:00:00.000000
    assert by_key["BTC-USD", before, "coinbase"][2] == 5
    assert by_key["BTC-USD", before, "kraken"][2] == 6  # 5 + the trade at 23:59:59.999999
    assert by_key["BTC-USD", midnight, "kraken"][2] == 5
    single = summary[-1]
    assert single[0] == "BTC-USD" and single[3] == 1 and single[13] == 0.0


def test_volume_share_of_market_cap_equals_python_over_raw_trades_and_snapshots(
    built_marts: BuiltMarts,
) -> None:
    """Per hour: our BTC dollar volume from the raw trades (every venue, every dollar quote)
    against the hour's last dollar snapshot, both computed here."""
    ours: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0, 0])  # base, quote, n, venues
    for (asset, hour, _exchange), (base, quote, count, _) in _cross_venue_reference().items():
        if asset == "BTC-USD":
            total = ours[hour]
            total[0] += base
            total[1] += quote
            total[2] += count
            total[3] += 1
    newest: dict[int, MarketSnapshot] = {}
    for snapshot in sorted(MARKET_SNAPSHOTS, key=lambda s: s.ts_source):
        if snapshot.vs_currency == "USD":
            newest[snapshot.ts_source - snapshot.ts_source % HOUR_US] = snapshot
    hours = sorted(set(ours) & set(newest))
    start = CROSS_VENUE_START_US
    assert hours == [start, start + HOUR_US, start + 2 * HOUR_US]  # not 01:00 nor 03:00

    rows = (
        marts(built_marts.data_dir)
        .execute(
            """
            SELECT data_source, asset, hour_start, hour_end, snapshot_at, price, market_cap,
                   fully_diluted_valuation, circulating_supply, market_cap_rank,
                   reported_volume_24h, venue_count, trade_count, base_volume, quote_volume,
                   volume_share_of_market_cap, circulating_supply_turnover
            FROM marts.volume_share_of_market_cap_hourly ORDER BY data_source, asset, hour_start
            """
        )
        .fetchall()
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [("coingecko", "BTC", _hour(h)) for h in hours]
    for row, hour in zip(rows, hours, strict=True):
        snap = newest[hour]
        base, quote, count, venues = ours[hour]
        assert row[3] == _hour(hour + HOUR_US)
        assert row[4] == datetime.fromtimestamp(snap.ts_source / 1e6, UTC)
        figures = (snap.price, snap.market_cap, snap.fully_diluted_valuation,
                   snap.circulating_supply, snap.market_cap_rank, snap.volume_24h)  # fmt: skip
        assert row[5:11] == figures
        assert row[11:13] == (venues, count)
        assert row[13:15] == pytest.approx((base, quote), rel=1e-12)
        cap, supply = snap.market_cap, snap.circulating_supply
        assert row[15] == (None if cap is None else pytest.approx(quote / cap, rel=1e-12))
        assert row[16] == pytest.approx(base / supply, rel=1e-12)
    # The boundaries: 23:00's snapshot at its last µs wins over the one at its first; 00:00's
    # (at 00:00:00 exactly) belongs to 00:00 and, knowing no market cap, has no share.
    assert rows[1][4].minute == 59 and rows[1][6] == 1.2250e12
    assert rows[2][4] == _hour(start + 2 * HOUR_US) and rows[2][6] is None and rows[2][15] is None
    assert rows[1][11] == 3 and rows[0][11] == 2  # Binance joins at 23:54

    # The same rows over HTTP, asked for in a Binance spelling.
    app = FastAPI()
    app.include_router(marts_router())
    app.state.marts = DuckDBMarts(built_marts.data_dir)
    served = TestClient(app).get("/api/v1/analytics/market-cap/hourly", params={"asset": "BTCUSDT"})
    assert served.status_code == 200, served.text
    assert [(r["hour_start"], r["market_cap"]) for r in served.json()] == [
        (r[2].isoformat().replace("+00:00", "Z"), r[6]) for r in rows
    ]


def test_incremental_run_after_new_trades_equals_full_refresh(
    built_marts: BuiltMarts, tmp_path: Path
) -> None:
    data_dir = copy_data_dir(built_marts.data_dir, tmp_path / "data")
    # Two more hours of the same market: new rows, and more trades in the last built hour.
    replay_into(data_dir, [more_synthetic_trades(built_marts.data_dir)])
    incremental = dbt(data_dir, "build")
    assert incremental.ok, incremental.tail(40)
    query = "SELECT * EXCLUDE (seconds_since_last_trade) FROM marts.{} ORDER BY ALL"
    before = {m: marts(data_dir).execute(_q(m, query)).fetchall() for m in _MARTS}
    full = dbt(data_dir, "build", "--full-refresh")
    assert full.ok, full.tail(40)
    after = {m: marts(data_dir).execute(_q(m, query)).fetchall() for m in _MARTS}
    assert before == after


_MARTS = (
    "trading_summary_hourly",
    "trading_summary_daily",
    "data_quality_daily",
    "cross_venue_volume_share_hourly",
    "cross_venue_hourly",
    "volume_share_of_market_cap_hourly",
)


def _q(model: str, template: str) -> str:
    sql = template.format(model)
    return (
        sql
        if model == "data_quality_daily"
        else sql.replace(" EXCLUDE (seconds_since_last_trade)", "")
    )


def test_a_corrupted_staging_row_fails_the_build_and_keeps_the_last_marts(
    built_marts: BuiltMarts, tmp_path: Path
) -> None:
    data_dir = copy_data_dir(built_marts.data_dir, tmp_path / "data")
    published = (data_dir / "analytics.duckdb").read_bytes()
    warm = duckdb.connect(str(data_dir / "warm.duckdb"))
    warm.execute(
        "UPDATE candles SET high = low - 1 WHERE (symbol, interval, open_time) IN "
        "(SELECT symbol, interval, open_time FROM candles WHERE interval = '1m' LIMIT 1)"
    )
    warm.close()
    result = dbt(data_dir, "build")
    assert not result.ok
    assert re.search(r"FAIL 1 ohlc_consistent_stg_marketpipe__candles", result.output)
    assert (data_dir / "analytics.duckdb").read_bytes() == published


def test_docs_generate_describes_every_model_and_reads_staging_to_marts(
    built_marts: BuiltMarts, tmp_path: Path
) -> None:
    data_dir = copy_data_dir(built_marts.data_dir, tmp_path / "data")
    result = dbt(data_dir, "docs generate")
    assert result.ok, result.tail(40)
    target = data_dir / "dbt" / "target"
    assert (target / "catalog.json").is_file() and (target / "index.html").is_file()
    manifest = json.loads((target / "manifest.json").read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    layer = {k: v["fqn"][1] for k, v in models.items()}  # staging | intermediate | marts
    assert set(layer.values()) == {"staging", "intermediate", "marts"}
    for key, node in models.items():
        assert node["description"], key
        assert node["columns"], key
        for name, column in node["columns"].items():
            assert column["description"], f"{key}.{name}"
        parents = manifest["parent_map"][key]
        kinds = {layer.get(p, p.split(".")[0]) for p in parents}
        allowed = {
            "staging": {"source"},
            "intermediate": {"staging", "intermediate"},
            "marts": {"staging", "intermediate", "marts"},
        }[layer[key]]
        assert kinds <= allowed, (key, kinds)
    marts_parents = {
        layer.get(p, "source")
        for k in models
        if layer[k] == "marts"
        for p in manifest["parent_map"][k]
    }
    assert "source" not in marts_parents


def test_source_freshness_passes_on_fresh_data(built_marts: BuiltMarts, tmp_path: Path) -> None:
    data_dir = copy_data_dir(built_marts.data_dir, tmp_path / "data")
    result = dbt(data_dir, "source freshness")
    assert result.ok, result.tail(40)
    assert re.search(r"PASS freshness of marketpipe\.trades_recent", result.output)
