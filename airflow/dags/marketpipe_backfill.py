"""Manual: back-fill one symbol's trades in [start, end) over REST and recompute the candles
they touch. Trigger with params, e.g. {"symbol": "BTCUSDT", "start": "2024-08-09T00:00:00Z",
"end": "2024-08-09T01:00:00Z"}."""

import sys
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param

sys.path.insert(0, str(Path(__file__).parent))  # the DAG folder's shared module
from marketpipe_common import DEFAULT_ARGS, MARKETPIPE, START, alert_on_failure

with DAG(
    dag_id="marketpipe_backfill",
    description="Back-fill trades over REST and recompute candles (marketpipe backfill)",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULT_ARGS,
    params={
        "symbol": Param("BTCUSDT", type="string", pattern=r"^[A-Za-z0-9-]{2,30}$"),
        "start": Param(type="string", format="date-time", description="inclusive, UTC"),
        "end": Param(type="string", format="date-time", description="exclusive, UTC"),
    },
    tags=["marketpipe", "backfill"],
):
    # Params travel as environment variables, never spliced into the shell command.
    BashOperator(
        task_id="backfill",
        bash_command=(
            f'{MARKETPIPE} backfill --symbol "$BACKFILL_SYMBOL" '
            '--start "$BACKFILL_START" --end "$BACKFILL_END"'
        ),
        env={
            "BACKFILL_SYMBOL": "{{ params.symbol }}",
            "BACKFILL_START": "{{ params.start }}",
            "BACKFILL_END": "{{ params.end }}",
        },
        append_env=True,
        on_failure_callback=alert_on_failure,
    )
