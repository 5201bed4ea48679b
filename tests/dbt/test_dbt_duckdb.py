"""The dbt project on the duckdb target (embedded mode), over replayed real and synthetic data.

Values are checked against plain SQL over the raw recorded frames (harness/reference.py parses
them with the standard library), never against what the marts produced."""

import json
import re
from pathlib import Path

import duckdb
import pytest

from harness.reference import raw_trades, reference_hours
from tests.conftest import BINANCE_08, BINANCE_09
from tests.dbt.conftest import BuiltMarts
from tests.dbt.warehouse import copy_data_dir, dbt, more_synthetic_trades, replay_into

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
    for expected in ("vwap", "volatility", "drawdown", "assert_hourly_summary_matches"):
        assert expected in names
    assert len(declared_tests) >= 100


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
    ranked = con.execute("SELECT symbol FROM marts.market_overview ORDER BY volume_rank")
    symbols = [r[0] for r in ranked.fetchall()]
    assert sorted(symbols) == ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT"]


def test_synthetic_days_are_summarized_per_symbol_and_day(built_marts: BuiltMarts) -> None:
    con = marts(built_marts.data_dir)
    per_symbol = con.execute(
        """
        SELECT symbol, count(*), sum(trade_count), min(completeness_pct)
        FROM marts.trading_summary_daily WHERE symbol <> 'BTC-USDT' GROUP BY symbol ORDER BY 1
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
        "WHERE symbol <> 'BTC-USDT' AND realized_volatility > 0 AND max_drawdown >= 0"
    ).fetchone()
    assert volatility is not None and volatility[0] >= 9


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


_MARTS = ("trading_summary_hourly", "trading_summary_daily", "data_quality_daily")


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
