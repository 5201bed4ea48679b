"""The same dbt project on the bigquery target (dbt-bigquery), against the BigQuery emulator
(goccy/bigquery-emulator) holding the warm store written by storage/bigquery_warm.py.

What the emulator stops, and how this test gets past it (docs/dbt.md, "BigQuery target"):
- `CREATE SCHEMA` is accepted but does nothing, so the model datasets are made through the API
  first (dbt then sees them and never issues it);
- every query job comes back as statementType "SELECT", DDL and DML included, and dbt-bigquery
  then fails each model that ran fine; `test_dbt_alone_fails_on_the_emulators_job_metadata`
  pins that, and the build runs through tests/dbt/bigquery_jobs_shim.py, which corrects only
  that field.
Everything else is dbt-bigquery and the emulator as they are: the whole `dbt build` (models,
data tests, unit tests), whose marts must equal the DuckDB build of the same replay.
"""

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from harness.reference import raw_trades, reference_hours, sums_agree
from marketpipe.analytics.runner import DbtResult, dbt_executable, project_dir
from marketpipe.analytics.settings import DbtSettings
from marketpipe.model.batch import CommitBatch, merge_batches
from marketpipe.model.schemas import MARKET_SNAPSHOT_SCHEMA
from marketpipe.storage.bigquery_client import BigQueryLocation
from marketpipe.storage.bigquery_schema import columns_of
from marketpipe.storage.bigquery_warm import BigQueryWarehouse
from tests.conftest import BINANCE_08, BINANCE_09
from tests.dbt.bigquery_jobs_shim import jobs_shim
from tests.dbt.test_dbt_duckdb import FIRST_PRICE, LAST_PRICE
from tests.dbt.test_dbt_postgres import CLOCK_COLUMNS, MARTS
from tests.dbt.warehouse import (
    MARKET_SNAPSHOTS,
    dbt,
    replay_into,
    require_dbt,
    seed_market_snapshots,
    write_cross_venue_capture,
)
from tests.servers.scripts import ScriptServer, server_dir

# A dbt build on the emulator takes about two minutes when the machine is busy.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

PROJECT = "marketpipe-local"
WARM_DATASET = "warm"
# Where generate_schema_name puts the models.
MODEL_DATASETS = ("staging", "intermediate", "marts")
# What dbt-bigquery says after each DDL statement the emulator ran (see the module docstring).
EMULATOR_JOB_ERROR = "'NoneType' object has no attribute 'path'"


@dataclass(frozen=True)
class BigQueryBuild:
    client: bigquery.Client
    data_dir: Path
    compiled: DbtResult
    compiled_dir: Path
    direct: DbtResult
    direct_view_type: str
    built: DbtResult


def run_dbt_bigquery(work: Path, endpoint: str, command: str, *args: str) -> DbtResult:
    """`dbt COMMAND --target bigquery` against `endpoint`, with its target and logs in `work`."""
    settings = DbtSettings()
    project = project_dir(settings)
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
        # An emulator checks no credentials; oauth-secrets with any token skips Google's auth.
        "MARKETPIPE_DBT_BQ_METHOD": "oauth-secrets",
        "MARKETPIPE_DBT_BQ_TOKEN": "emulator",
        "MARKETPIPE_DBT_BQ_PROJECT": PROJECT,
        "MARKETPIPE_DBT_BQ_ENDPOINT": endpoint,
        "MARKETPIPE_DBT_WARM_SCHEMA": WARM_DATASET,
    }
    line = ["nice", "-n", "10", str(dbt_executable(settings)), command, *args]
    line += ["--project-dir", str(project), "--profiles-dir", str(project), "--target", "bigquery"]
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = subprocess.run(
        line, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    return DbtResult(line, done.returncode, time.perf_counter() - started,
                     done.stdout + done.stderr)  # fmt: skip


def emulator_client(endpoint: str) -> bigquery.Client:
    return bigquery.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=endpoint),
    )


def seed_warm_store(endpoint: str, batches: list[CommitBatch]) -> None:
    """The replay's batches through the BigQuery warehouse's own commit path, as one merged
    commit (the same end state as committing them one by one, which
    tests/storage/test_bigquery_warm.py proves; one commit keeps the emulator's O(n*m)
    dedup join small)."""
    warm = BigQueryWarehouse(
        BigQueryLocation(project=PROJECT, dataset=WARM_DATASET, endpoint=endpoint, timeout_s=120)
    )
    try:
        warm.migrate()
        warm.commit(merge_batches(batches))
    finally:
        warm.close()


def seed_market_snapshots_table(client: bigquery.Client) -> None:
    """MARKET_SNAPSHOTS in the warm dataset's market_snapshots, for as long as the BigQuery
    warehouse's commit path does not store snapshots itself (then it holds them already)."""
    ddl = ", ".join(f"`{c}` {t}" for c, t in columns_of(MARKET_SNAPSHOT_SCHEMA).items())
    table = f"{PROJECT}.{WARM_DATASET}.market_snapshots"
    client.query(f"CREATE TABLE IF NOT EXISTS `{table}` ({ddl})").result(timeout=60)
    if list(client.list_rows(table, max_results=1, timeout=60)):
        return

    def value(name: str, v: object) -> str:
        if v is None:
            return "NULL"
        if name.startswith("ts_"):
            return f"TIMESTAMP_MICROS({v})"
        return f"'{v}'" if isinstance(v, str) else repr(v)

    names = MARKET_SNAPSHOT_SCHEMA.names
    rows = ", ".join(
        "(" + ", ".join(value(n, getattr(s, n)) for n in names) + ")" for s in MARKET_SNAPSHOTS
    )
    client.query(f"INSERT INTO `{table}` ({', '.join(names)}) VALUES {rows}").result(timeout=60)


@pytest.fixture(scope="module")
def bigquery_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryBuild]:
    require_dbt()
    root = tmp_path_factory.mktemp("dbt-bq")
    server = ScriptServer("bigquery", server_dir("bigquery"), env={"BIGQUERY_PROJECT": PROJECT})
    server.start()
    try:
        batches: list[CommitBatch] = []
        data_dir = root / "data"
        # the recording and the other venues' tiny capture of the same hours (53 trades)
        capture = write_cross_venue_capture(root)
        replay_into(
            data_dir, [BINANCE_08, BINANCE_09, capture], lambda batch, _: batches.append(batch)
        )
        seed_market_snapshots(data_dir, lambda batch, _: batches.append(batch))
        seed_warm_store(server.url, batches)
        client = emulator_client(server.url)
        seed_market_snapshots_table(client)
        for dataset in MODEL_DATASETS:
            client.create_dataset(dataset, timeout=30)
        compiled = run_dbt_bigquery(root / "compile", server.url, "compile")
        direct = run_dbt_bigquery(
            root / "direct", server.url, "run", "--select", "stg_marketpipe__trades"
        )
        direct_view = client.get_table(f"{PROJECT}.staging.stg_marketpipe__trades")
        # the emulator refuses CREATE OR REPLACE VIEW over an existing view (409)
        client.delete_table(direct_view, timeout=30)
        with jobs_shim(server.url) as shim:
            built = run_dbt_bigquery(root / "build", shim, "build")
        assert built.ok, built.tail(60)
        compiled_dir = root / "compile" / "target" / "compiled" / "marketpipe"
        yield BigQueryBuild(
            client, data_dir, compiled, compiled_dir, direct, str(direct_view.table_type), built
        )
    finally:
        server.destroy()


def test_compile_for_bigquery_gives_googlesql(bigquery_build: BigQueryBuild) -> None:
    assert bigquery_build.compiled.ok, bigquery_build.compiled.tail(40)
    assert "target='bigquery'" in bigquery_build.compiled.output
    models = sorted(bigquery_build.compiled_dir.glob("models/*/*.sql"))
    assert len(models) == 19  # with the market-cap staging model and mart
    sql = {path.stem: path.read_text() for path in models}
    for name, text in sql.items():
        # PostgreSQL/DuckDB forms GoogleSQL lacks (`"x"` would be a string literal there)
        for foreign in ("timestamp with time zone", "varchar", "::", '"', "date_trunc("):
            assert foreign not in text, (name, foreign)
    assert "cast(`interval` as string)" in sql["stg_marketpipe__candles"]
    assert "timestamp_trunc(traded_at, hour, 'UTC')" in sql["int_trades_bucketed_to_hours"]
    assert "interval 1 hour" in sql["trading_summary_hourly"]
    # the asset of a symbol: dbt's position() is strpos on BigQuery
    assert "strpos(symbol, '-')" in sql["cross_venue_volume_share_hourly"]


def test_dbt_alone_fails_on_the_emulators_job_metadata(bigquery_build: BigQueryBuild) -> None:
    """Without the shim the view is created, yet dbt reports the model as failed: the day the
    emulator types its jobs, this fails and the shim can go."""
    direct = bigquery_build.direct
    assert not direct.ok
    assert EMULATOR_JOB_ERROR in direct.output, direct.tail(30)
    assert bigquery_build.direct_view_type == "VIEW"


def test_build_passes_on_bigquery_with_every_test_counted(bigquery_build: BigQueryBuild) -> None:
    done = re.search(
        r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+) NO-OP=\d+ TOTAL=(\d+)",
        bigquery_build.built.output,
    )
    assert done, bigquery_build.built.tail(40)
    passed, warned, errors, skipped, total = map(int, done.groups())
    assert (warned, errors, skipped) == (0, 0, 0) and passed == total >= 100
    assert "target='bigquery'" in bigquery_build.built.output
    # the unit tests (VWAP, volatility, drawdown, cross-venue shares and spread) ran on
    # BigQuery too, and so counted as passed
    assert bigquery_build.built.output.count("START unit_test") == 6
    for model in ("cross_venue_volume_share_hourly", "cross_venue_hourly"):
        assert re.search(
            rf"OK created sql incremental model marts\.{model}\b", bigquery_build.built.output
        ), model


def mart_rows(client: bigquery.Client, model: str) -> list[dict[str, object]]:
    """A mart's rows read through the table API, not a query: the emulator's SQL engine is
    what slows and, after a few hundred statements, stalls (see tests/servers/bigquery.py)."""
    table = f"{PROJECT}.marts.{model}"
    return [dict(row.items()) for row in client.list_rows(table, timeout=60)]


def test_hourly_summary_on_bigquery_equals_sql_over_raw_frames(
    bigquery_build: BigQueryBuild,
) -> None:
    columns = ("open_price", "high_price", "low_price", "close_price", "vwap", "base_volume",
               "trade_count", "completeness_pct")  # fmt: skip
    got = sorted(
        (int(r["hour_start"].timestamp()), *(r[c] for c in columns))  # type: ignore[attr-defined]
        for r in mart_rows(bigquery_build.client, "trading_summary_hourly")
        if r["symbol"] == "BTC-USDT"
    )
    expected = reference_hours(raw_trades([BINANCE_08, BINANCE_09]), "BTCUSDT")
    assert len(got) == len(expected) == 2
    for mine, ref in zip(got, expected, strict=True):
        assert mine[:5] == ref[:5]
        assert mine[5] == pytest.approx(ref[5], rel=1e-12)
        assert mine[6] == pytest.approx(ref[6], rel=1e-12)
        assert (mine[7], mine[8]) == (ref[7], ref[8]) == (ref[7], 100.0)
    assert got[0][1] == FIRST_PRICE and got[-1][4] == LAST_PRICE


def test_bigquery_and_duckdb_marts_agree_column_by_column(bigquery_build: BigQueryBuild) -> None:
    duck = dbt(bigquery_build.data_dir, "build")
    assert duck.ok, duck.tail(40)
    con = duckdb.connect(str(bigquery_build.data_dir / "analytics.duckdb"), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    for model, order in MARTS.items():
        all_columns = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'marts' AND table_name = ? ORDER BY ordinal_position",
                [model],
            ).fetchall()
        ]
        table = bigquery_build.client.get_table(f"{PROJECT}.marts.{model}")
        assert [f.name for f in table.schema] == all_columns, model
        columns = [c for c in all_columns if c not in CLOCK_COLUMNS]
        from_duckdb = con.execute(
            f"SELECT {', '.join(columns)} FROM marts.{model} ORDER BY {order}"
        ).fetchall()
        keys = [k.strip() for k in order.split(",")]
        from_bigquery = [
            tuple(row[c] for c in columns)
            for row in sorted(
                mart_rows(bigquery_build.client, model),
                key=lambda row: tuple(row[k] for k in keys),
            )
        ]
        assert len(from_duckdb) == len(from_bigquery) > 0, model
        for a, b in zip(from_duckdb, from_bigquery, strict=True):
            for name, x, y in zip(columns, a, b, strict=True):
                if isinstance(x, float) and isinstance(y, float):
                    assert sums_agree(x, y), (model, name, x, y)
                else:
                    assert (type(x), x) == (type(y), y), (model, name, x, y)
