"""BigQuery fixtures: a real emulator (goccy/bigquery-emulator) of its own for each test.

- `bigquery_server`: the test's ScriptServer (scripts/servers/bigquery.sh). Per test, not per
  session: the emulator's SQL engine (WebAssembly) grows with every query it analyses and
  panics near its 2 GiB address space ("slice bounds out of range [-2147…]"), which a few
  tests' worth of queries reaches. It starts in under a second.
- `bigquery_location`: a `BigQueryLocation` of a new, empty dataset on it, with a short
  deadline so that a failing call fails the test instead of hanging it.
"""

import itertools
import os
from collections.abc import Iterator

import pytest

from marketpipe.storage.bigquery_client import BigQueryLocation
from tests.servers.scripts import ScriptServer, server_dir

PROJECT = "marketpipe-local"
_datasets = itertools.count()


@pytest.fixture
def bigquery_server() -> Iterator[ScriptServer]:
    server = ScriptServer("bigquery", server_dir("bigquery"), env={"BIGQUERY_PROJECT": PROJECT})
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def bigquery_location(bigquery_server: ScriptServer) -> BigQueryLocation:
    return BigQueryLocation(
        project=PROJECT,
        dataset=f"t_{os.getpid()}_{next(_datasets)}",
        endpoint=bigquery_server.url,
        timeout_s=20.0,
    )
