"""The cluster stack runs for real under podman: recorded trades ingested into Kafka come out
as the reference 1m candles in PostgreSQL and through serve's /api/v3/klines, Prometheus
scrapes serve, and every SQL panel of the dashboards returns rows from that PostgreSQL.
Not started here: Grafana, Airflow, process-spark and kafka-ui (docs/operations.md says why)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from harness.reference import raw_trades, reference_candles
from tests.deploy.conftest import TEST_SECRETS
from tests.deploy.grafana_queries import VARIABLE_VALUES, expand_sql, targets
from tests.deploy.podman import (
    COMPOSE_DIR,
    REPO,
    ComposeStack,
    build_images,
    compose_stack,
    free_port,
    http_json,
    wait_for,
)

# The first test builds six images (cold: minutes) and starts the stack in its setup.
pytestmark = pytest.mark.timeout(1200)

RECORDED = REPO / "tests" / "data" / "binance"
FILES = [RECORDED / "btcusdt-spot-2024-08-08.recv.gz", RECORDED / "btcusdt-spot-2024-08-09.recv.gz"]
INFRA = ["kafka", "postgres", "redis", "s3"]
ROLES = ["ingest", "process", "archive", "serve", "prometheus"]
SQL_TARGETS = list(targets("grafana-postgresql-datasource"))


@pytest.fixture(scope="module")
def cluster_stack() -> Iterator[ComposeStack]:
    build_images("marketpipe", "prometheus", "postgres", "redis", "kafka", "s3")
    env = {
        **TEST_SECRETS,
        "MARKETPIPE_SYMBOLS": "BTCUSDT",
        "MARKETPIPE_TOPIC_PARTITIONS": "2",
        "MARKETPIPE_API_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        "POSTGRES_PORT": str(free_port()),
        "MARKETPIPE_TEST_RECORDED": str(RECORDED),
    }
    files = [COMPOSE_DIR / "cluster.yaml", Path(__file__).parent / "cluster.test.yaml"]
    with compose_stack(f"mpcluster{os.getpid()}", files, env, INFRA) as stack:
        # Podman 4.3 cannot wait for `service_healthy`: the test orders the start-up.
        for service in INFRA:
            stack.wait_healthy(service)
        stack.compose("up", "-d", "--no-build", *ROLES)
        stack.wait_healthy("serve")
        yield stack


@pytest.fixture(scope="module")
def processed(cluster_stack: ComposeStack) -> ComposeStack:
    """The stack once every reference window is final in PostgreSQL (waited for once: a
    broken stack fails each test at once instead of waiting again)."""
    want = len(reference())
    try:
        wait_for(lambda: len(final_minutes(cluster_stack)) >= want, 300, "final candles", 5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; process logs:\n{cluster_stack.logs('process')}") from None
    return cluster_stack


def pg_dsn(stack: ComposeStack) -> str:
    return (
        f"postgresql://marketpipe:{stack.env['POSTGRES_PASSWORD']}@127.0.0.1:"
        f"{stack.env['POSTGRES_PORT']}/marketpipe"
    )


def final_minutes(stack: ComposeStack) -> list[tuple[Any, ...]]:
    try:
        with psycopg.connect(pg_dsn(stack), connect_timeout=5) as conn:
            return conn.execute(
                "SELECT (extract(epoch FROM open_time) * 1000)::bigint, open, high, low, close,"
                " trade_count, first_trade_id, last_trade_id FROM candles"
                " WHERE exchange = 'binance' AND symbol = 'BTC-USDT' AND interval = '1m'"
                " AND is_final ORDER BY open_time"
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return []  # before the first migration


def reference() -> list[tuple[Any, ...]]:
    return [
        (r.open_ms, r.open, r.high, r.low, r.close, r.trades, r.first_id, r.last_id)
        for r in reference_candles(raw_trades(FILES))
    ]


def test_recorded_trades_come_out_as_the_reference_candles_in_postgres(
    processed: ComposeStack,
) -> None:
    assert final_minutes(processed) == reference()


def test_serve_answers_the_reference_klines(processed: ComposeStack) -> None:
    want = reference()
    api = f"http://127.0.0.1:{processed.env['MARKETPIPE_API_PORT']}"
    rows = http_json(
        f"{api}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={want[0][0]}"
        f"&endTime={want[-1][0]}&limit=100"
    )
    assert [(r[0], float(r[1]), float(r[2]), float(r[3]), float(r[4]), r[8]) for r in rows] == [
        w[:6] for w in want
    ]


def test_prometheus_scrapes_serve_in_the_cluster(cluster_stack: ComposeStack) -> None:
    prom = f"http://127.0.0.1:{cluster_stack.env['PROMETHEUS_PORT']}"
    query = quote('up{job="marketpipe-serve"} == 1')
    wait_for(
        lambda: http_json(f"{prom}/api/v1/query?query={query}")["data"]["result"],
        90,
        "serve scraped",
    )


def test_archive_puts_every_recorded_trade_in_trades_recent(processed: ComposeStack) -> None:
    with psycopg.connect(pg_dsn(processed)) as conn:
        trades = conn.execute(
            "SELECT count(*) FROM trades_recent WHERE symbol = 'BTC-USDT'"
        ).fetchone()
    assert trades is not None and trades[0] == len(raw_trades(FILES))


@pytest.mark.parametrize(
    ("board", "title", "target"),
    SQL_TARGETS,
    ids=[f"{board}:{title}" for board, title, _ in SQL_TARGETS],
)
def test_every_sql_panel_returns_rows_from_the_cluster_postgres(
    processed: ComposeStack, board: str, title: str, target: dict[str, Any]
) -> None:
    # The dashboard's time range over the recorded day (2024-08-09).
    sql = expand_sql(
        target["rawSql"], "2024-08-08T00:00:00Z", "2024-08-10T00:00:00Z", VARIABLE_VALUES
    )
    with psycopg.connect(pg_dsn(processed)) as conn:
        rows = conn.execute(sql).fetchall()
    assert rows, f"{board} / {title} returned no rows: {sql}"
