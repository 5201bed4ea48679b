"""S3 fixtures: one real S3-compatible server (s3proxy) per session, a fresh bucket per test.

- `s3_server`: the session's ScriptServer.
- `s3_bucket`: an `S3Endpoint` (endpoint URL, region, credentials, bucket) whose bucket is new
  and empty.
"""

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.servers.scripts import ScriptServer, run_script, server_dir

ACCESS_KEY = "marketpipe"
SECRET_KEY = "marketpipe-secret"
REGION = "us-east-1"
_buckets = itertools.count()


@dataclass(frozen=True)
class S3Endpoint:
    endpoint: str
    region: str
    access_key: str
    secret_key: str
    bucket: str


@pytest.fixture(scope="session")
def s3_server() -> Iterator[ScriptServer]:
    # The AWS SDK in pyarrow sends CRC checksums by default, which s3proxy answers with 501
    # NotImplemented; marketpipe's S3 lake sets the same (settings: cluster.s3_checksums).
    os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "WHEN_REQUIRED")
    os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "WHEN_REQUIRED")
    server = ScriptServer(
        "s3", server_dir("s3"), env={"S3_ACCESS_KEY": ACCESS_KEY, "S3_SECRET_KEY": SECRET_KEY}
    )
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def s3_bucket(s3_server: ScriptServer) -> S3Endpoint:
    bucket = f"test-{os.getpid()}-{next(_buckets)}"
    run_script(
        "s3", "start", str(s3_server.data_dir), str(s3_server.port), bucket, env=s3_server.env
    )
    return S3Endpoint(s3_server.url, REGION, ACCESS_KEY, SECRET_KEY, bucket)
