"""Shared settings of marketpipe's DAGs (cluster mode).

Every task runs a `marketpipe` command (BashOperator); no pipeline logic lives here. The
worker's environment configures marketpipe as usual (MARKETPIPE_* variables, e.g.
MARKETPIPE_DBT__TARGET=postgres and MARKETPIPE_DBT__POSTGRES_URL=...); MARKETPIPE_BIN names
the executable (default: `marketpipe` on PATH).
"""

import json
import logging
import os
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

MARKETPIPE = os.environ.get("MARKETPIPE_BIN", "marketpipe")
START = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "marketpipe",
    "retries": 0,
    "execution_timeout": timedelta(minutes=30),
}

log = logging.getLogger("marketpipe.alerts")


def alert_on_failure(context: dict[str, Any]) -> None:
    """A failed check is an alert: logged at ERROR and, if MARKETPIPE_ALERT_WEBHOOK_URL is
    set, posted there as JSON (Slack-compatible `text`)."""
    ti = context.get("task_instance")
    text = (
        f"marketpipe: {getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} failed "
        f"({context.get('exception')})"
    )
    log.error("ALERT %s", text)
    url = os.environ.get("MARKETPIPE_ALERT_WEBHOOK_URL")
    if url:
        request = urllib.request.Request(
            url,
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except OSError as exc:
            log.error("alert webhook %s failed: %s", url, exc)
