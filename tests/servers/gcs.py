"""GCS fixtures: one real fake-gcs-server per session (scripts/servers/gcs.sh), a fresh
bucket per test.

- `gcs_server`: the session's ScriptServer; its `url` is the endpoint (http://127.0.0.1:PORT),
  which is also what google-cloud-* clients want in STORAGE_EMULATOR_HOST.
- `gcs_bucket`: a `GcsEndpoint` (endpoint URL, bucket) whose bucket is new and empty.
"""

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.servers.scripts import ScriptServer, run_script, server_dir

PROJECT = "marketpipe"  # the project buckets are created in (GcpSettings.project's default)
_buckets = itertools.count()


@dataclass(frozen=True)
class GcsEndpoint:
    endpoint: str
    bucket: str


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[ScriptServer]:
    server = ScriptServer("gcs", server_dir("gcs"), env={"GCS_PROJECT": PROJECT})
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def gcs_bucket(gcs_server: ScriptServer) -> GcsEndpoint:
    bucket = f"test-{os.getpid()}-{next(_buckets)}"
    run_script(
        "gcs", "start", str(gcs_server.data_dir), str(gcs_server.port), bucket, env=gcs_server.env
    )
    return GcsEndpoint(gcs_server.url, bucket)
