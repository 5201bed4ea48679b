"""The Airflow DAGs in Airflow's own venv (.cache/airflow-venv, scripts/setup.d/41-airflow-venv.sh):
they import cleanly, are scheduled as specified, call only `marketpipe` commands, and
`airflow dags test` runs marketpipe_dbt and marketpipe_health against a local data dir."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbt.warehouse import replay_into, require_dbt, synthetic_recordings

# dbt and Airflow runs take minutes when the machine is busy.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "airflow" / "dags"
AIRFLOW_VENV = ROOT / ".cache" / "airflow-venv" / "bin"
MARKETPIPE = Path(sys.executable).parent / "marketpipe"

INSPECT = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=__import__("os").environ["AIRFLOW__CORE__DAGS_FOLDER"])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag in bag.dags.values():
    out["dags"][dag.dag_id] = {
        "schedule": repr(dag.timetable),
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "params": sorted(dag.params.keys()),
        "tasks": {t.task_id: [type(t).__name__, getattr(t, "bash_command", None)]
                  for t in dag.tasks},
    }
print("JSON" + json.dumps(out))
"""


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "MARKETPIPE_BIN": str(MARKETPIPE),
        **extra,
    }


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not (AIRFLOW_VENV / "airflow").is_file():
        pytest.fail(
            f"no Airflow at {AIRFLOW_VENV}; `make test` installs it "
            "(scripts/setup.d/41-airflow-venv.sh)"
        )
    home = tmp_path_factory.mktemp("airflow-home")
    migrate = subprocess.run(
        [str(AIRFLOW_VENV / "airflow"), "db", "migrate"],
        env=airflow_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    yield home


@pytest.fixture(scope="module")
def fresh_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three synthetic symbols with trades up to now (fresh), nothing else."""
    root = tmp_path_factory.mktemp("airflow-data")
    first, _ = synthetic_recordings(root, end_us=time.time_ns() // 1000)
    replay_into(root / "data", [first])
    return root / "data"


def dags_test(
    home: Path, dag_id: str, data_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRFLOW_VENV / "airflow"), "dags", "test", dag_id],
        env=airflow_env(home, MARKETPIPE_DATA_DIR=str(data_dir), **env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_dagbag_imports_every_dag_without_errors(airflow_home: Path) -> None:
    result = subprocess.run(
        [str(AIRFLOW_VENV / "python"), "-c", INSPECT],
        env=airflow_env(airflow_home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("JSON", 1)[1])
    assert report["errors"] == {}
    dags = report["dags"]
    assert set(dags) == {
        "marketpipe_dbt",
        "marketpipe_lifecycle",
        "marketpipe_health",
        "marketpipe_backfill",
    }
    assert "delta=datetime.timedelta(seconds=600)" in dags["marketpipe_dbt"]["schedule"]
    assert dags["marketpipe_dbt"]["max_active_runs"] == 1
    assert (
        "expression='0 3 * * *', timezone=Timezone('UTC')"
        in (dags["marketpipe_lifecycle"]["schedule"])
    )
    assert "delta=datetime.timedelta(seconds=120)" in dags["marketpipe_health"]["schedule"]
    assert "NullTimetable" in dags["marketpipe_backfill"]["schedule"]  # manual only
    assert dags["marketpipe_backfill"]["params"] == ["end", "start", "symbol"]
    for dag in dags.values():
        assert dag["catchup"] is False
        for kind, command in dag["tasks"].values():
            # Tasks run marketpipe commands, never copies of pipeline logic.
            assert kind == "BashOperator"
            assert command.startswith(str(MARKETPIPE) + " "), command


def test_dags_test_marketpipe_dbt_builds_the_marts(
    airflow_home: Path, fresh_data_dir: Path
) -> None:
    require_dbt()
    result = dags_test(airflow_home, "marketpipe_dbt", fresh_data_dir)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "state=success" in log
    assert "Completed successfully" in log
    assert (fresh_data_dir / "analytics.duckdb").is_file()


def test_dags_test_marketpipe_health_passes_on_fresh_data(
    airflow_home: Path, fresh_data_dir: Path
) -> None:
    result = dags_test(
        airflow_home, "marketpipe_health", fresh_data_dir, MARKETPIPE_MAX_STALENESS_S="3600"
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "freshness: 3 symbols ok" in log and "completeness: 3 symbols ok" in log
    assert "state=success" in log


def test_dags_test_marketpipe_health_fails_and_alerts_on_a_stale_symbol(
    airflow_home: Path, fresh_data_dir: Path
) -> None:
    result = dags_test(
        airflow_home, "marketpipe_health", fresh_data_dir, MARKETPIPE_MAX_STALENESS_S="0.001"
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "is stale: last trade" in log
    assert "ALERT marketpipe: marketpipe_health.freshness failed" in log
