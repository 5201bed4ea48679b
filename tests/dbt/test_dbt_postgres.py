"""The same dbt project on the postgres target, against a real PostgreSQL server holding the
cluster warm store (storage/postgres_warm.py, written through its own commit path)."""

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg
import pytest

from harness.reference import raw_trades, reference_hours, sums_agree
from marketpipe.analytics.build import run_for_mode
from marketpipe.analytics.runner import DbtResult
from marketpipe.analytics.settings import DbtSettings
from marketpipe.model.batch import CommitBatch
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.conftest import BINANCE_08, BINANCE_09
from tests.dbt.test_dbt_duckdb import FIRST_PRICE, LAST_PRICE
from tests.dbt.warehouse import build_data_dir, dbt, require_dbt
from tests.servers.scripts import ScriptServer

# dbt and Airflow runs take minutes when the machine is busy.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

MARTS = {
    "trading_summary_hourly": "exchange, symbol, hour_start",
    "trading_summary_daily": "exchange, symbol, trade_date",
    "market_overview": "exchange, symbol",
    "alerts_daily": "alert_date, exchange, symbol, alert_kind, severity",
    "data_quality_daily": "exchange, symbol, trade_date",
    "cross_venue_volume_share_hourly": "asset, hour_start, exchange",
    "cross_venue_hourly": "asset, hour_start",
    "volume_share_of_market_cap_hourly": "data_source, asset, hour_start",
}
# Computed from the build clock, so the two builds differ by their run times.
CLOCK_COLUMNS = {"seconds_since_last_trade"}


@dataclass(frozen=True)
class PostgresBuild:
    dsn: str
    data_dir: Path
    result: DbtResult


@pytest.fixture(scope="module")
def postgres_build(
    postgres_server: ScriptServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresBuild]:
    require_dbt()
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS dbt_marts WITH (FORCE)")
        admin.execute("CREATE DATABASE dbt_marts")
    dsn = postgres_server.url.rsplit("/", 1)[0] + "/dbt_marts"
    batches: list[CommitBatch] = []
    data_dir = build_data_dir(
        tmp_path_factory.mktemp("dbt-pg"), on_commit=lambda batch, _: batches.append(batch)
    )
    warm = PostgresWarehouse(dsn)
    try:
        warm.migrate()
        for batch in batches:
            warm.commit(batch)
    finally:
        warm.close()
    settings = DbtSettings(target="postgres", postgres_url=dsn)
    result = asyncio.run(run_for_mode(settings, "build", [], data_dir=data_dir))
    assert result.ok, result.tail(60)
    yield PostgresBuild(dsn, data_dir, result)


def pg_rows(dsn: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def test_build_passes_on_postgres_with_every_test_counted(
    postgres_build: PostgresBuild,
) -> None:
    done = re.search(
        r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+) NO-OP=\d+ TOTAL=(\d+)",
        postgres_build.result.output,
    )
    assert done, postgres_build.result.tail(40)
    passed, warned, errors, skipped, total = map(int, done.groups())
    assert (warned, errors, skipped) == (0, 0, 0) and passed == total >= 100
    assert "target='postgres'" in postgres_build.result.output
    for model in ("cross_venue_volume_share_hourly", "cross_venue_hourly"):
        line = rf"OK created sql incremental model marts\.{model}\b"
        assert re.search(line, postgres_build.result.output), model


def test_hourly_summary_on_postgres_equals_sql_over_raw_frames(
    postgres_build: PostgresBuild,
) -> None:
    got = pg_rows(
        postgres_build.dsn,
        """
        SELECT extract(epoch FROM hour_start)::bigint, open_price, high_price, low_price,
               close_price, vwap, base_volume, trade_count, completeness_pct
        FROM marts.trading_summary_hourly WHERE symbol = 'BTC-USDT' ORDER BY hour_start
        """,
    )
    expected = reference_hours(raw_trades([BINANCE_08, BINANCE_09]), "BTCUSDT")
    assert len(got) == len(expected) == 2
    for mine, ref in zip(got, expected, strict=True):
        assert mine[:5] == ref[:5]
        assert mine[5] == pytest.approx(ref[5], rel=1e-12)
        assert mine[6] == pytest.approx(ref[6], rel=1e-12)
        assert (mine[7], mine[8]) == (ref[7], ref[8]) == (ref[7], 100.0)
    assert got[0][1] == FIRST_PRICE and got[-1][4] == LAST_PRICE


def test_postgres_and_duckdb_marts_agree_on_the_same_data(
    postgres_build: PostgresBuild,
) -> None:
    duck = dbt(postgres_build.data_dir, "build")
    assert duck.ok, duck.tail(40)
    con = duckdb.connect(str(postgres_build.data_dir / "analytics.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    for model, order in MARTS.items():
        columns = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position",
                [model],
            ).fetchall()
            if r[0] not in CLOCK_COLUMNS
        ]
        select = f"SELECT {', '.join(columns)} FROM marts.{model} ORDER BY {order}"
        from_duckdb = con.execute(select).fetchall()
        from_postgres = pg_rows(postgres_build.dsn, select)
        assert len(from_duckdb) == len(from_postgres) > 0, model
        for a, b in zip(from_duckdb, from_postgres, strict=True):
            for name, x, y in zip(columns, a, b, strict=True):
                if isinstance(x, float) and isinstance(y, float):
                    assert sums_agree(x, y), (model, name, x, y)
                else:
                    assert x == y, (model, name, x, y)


def test_api_serves_the_postgres_marts(postgres_build: PostgresBuild) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from marketpipe.serving.routes_marts import PostgresMarts, marts_router

    app = FastAPI()
    app.include_router(marts_router())
    app.state.marts = PostgresMarts(postgres_build.dsn)
    client = TestClient(app)
    daily = client.get(
        "/api/v1/analytics/summary/daily",
        params={"symbol": "BTCUSDT", "start": "2024-08-08", "end": "2024-08-09"},
    )
    assert daily.status_code == 200, daily.text
    rows = daily.json()
    assert [r["trade_date"] for r in rows] == ["2024-08-08", "2024-08-09"]
    assert rows[0]["open_price"] == FIRST_PRICE and rows[-1]["close_price"] == LAST_PRICE
    market_cap = client.get("/api/v1/analytics/market-cap/hourly", params={"asset": "btc"})
    assert market_cap.status_code == 200, market_cap.text
    assert [(r["hour_start"], r["venue_count"]) for r in market_cap.json()] == [
        ("2024-08-08T22:00:00Z", 2), ("2024-08-08T23:00:00Z", 3), ("2024-08-09T00:00:00Z", 3),
    ]  # fmt: skip
    overview = client.get("/api/v1/analytics/market-overview").json()
    assert [r["volume_rank"] for r in overview] == sorted(r["volume_rank"] for r in overview)
    assert {(r["exchange"], r["symbol"]) for r in overview} == {
        *(("binance", s) for s in ("BTC-USDC", "BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT")),
        ("coinbase", "BTC-USD"),
        ("kraken", "BTC-EUR"),
        ("kraken", "BTC-USD"),
    }
