"""Every 2 minutes: freshness and completeness of every symbol. A stale or incomplete symbol
fails its task (the command exits 1 naming the symbol) and raises an alert."""

import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

sys.path.insert(0, str(Path(__file__).parent))  # the DAG folder's shared module
from marketpipe_common import DEFAULT_ARGS, MARKETPIPE, START, alert_on_failure

with DAG(
    dag_id="marketpipe_health",
    description="Freshness and completeness checks (marketpipe check ...)",
    schedule=timedelta(minutes=2),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "execution_timeout": timedelta(minutes=2)},
    tags=["marketpipe", "health"],
):
    # Cluster mode reads the PostgreSQL warm store named by MARKETPIPE_WARM_URL. Thresholds:
    # MARKETPIPE_MAX_STALENESS_S (default 120 s) and MARKETPIPE_MIN_COMPLETENESS_PCT
    # (default 99.99 %) in the worker's environment.
    BashOperator(
        task_id="freshness",
        bash_command=(
            f"{MARKETPIPE} check freshness --max-staleness-s ${{MARKETPIPE_MAX_STALENESS_S:-120}}"
        ),
        on_failure_callback=alert_on_failure,
    )
    BashOperator(
        task_id="completeness",
        bash_command=(
            f"{MARKETPIPE} check completeness --min-pct ${{MARKETPIPE_MIN_COMPLETENESS_PCT:-99.99}}"
        ),
        on_failure_callback=alert_on_failure,
    )
