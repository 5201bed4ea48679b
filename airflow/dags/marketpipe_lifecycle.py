"""Daily at 03:00 UTC: retention, warm -> lake archival and compaction."""

import sys
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

sys.path.insert(0, str(Path(__file__).parent))  # the DAG folder's shared module
from marketpipe_common import DEFAULT_ARGS, MARKETPIPE, START, alert_on_failure

with DAG(
    dag_id="marketpipe_lifecycle",
    description="Storage lifecycle: retention, archival, compaction (marketpipe lifecycle run)",
    schedule="0 3 * * *",  # Airflow's default time zone is UTC
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["marketpipe", "storage"],
):
    BashOperator(
        task_id="lifecycle",
        bash_command=f"{MARKETPIPE} lifecycle run --backend cluster",
        on_failure_callback=alert_on_failure,
    )
