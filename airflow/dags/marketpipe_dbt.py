"""Every 10 minutes: `dbt build` of the marts (models and tests), one run at a time."""

import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

sys.path.insert(0, str(Path(__file__).parent))  # the DAG folder's shared module
from marketpipe_common import DEFAULT_ARGS, MARKETPIPE, START, alert_on_failure

with DAG(
    dag_id="marketpipe_dbt",
    description="Rebuild and test the dbt marts (marketpipe dbt build)",
    schedule=timedelta(minutes=10),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["marketpipe", "dbt"],
):
    BashOperator(
        task_id="dbt_build",
        bash_command=f"{MARKETPIPE} dbt build",
        on_failure_callback=alert_on_failure,
    )
