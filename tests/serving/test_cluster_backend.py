"""`marketpipe serve --backend cluster` (a real subprocess over real PostgreSQL, Redis and S3,
or BigQuery and GCS emulators) answers /api/v3/klines with the same rows as embedded mode,
and pushes live klines it reads from Redis pub/sub to WebSocket clients."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from marketpipe.model.batch import CommitBatch, merge_batches
from marketpipe.model.records import Candle
from marketpipe.storage.bigquery_client import BigQueryLocation
from marketpipe.storage.bigquery_warm import BigQueryWarehouse
from marketpipe.storage.gcs import GcsLocation, gcs_lake
from marketpipe.storage.postgres_warm import PostgresWarehouse
from marketpipe.storage.redis_hot import RedisHotTier
from marketpipe.storage.s3 import S3Location, s3_lake
from tests.servers.gcs import GcsEndpoint
from tests.servers.s3 import S3Endpoint
from tests.serving.conftest import free_port
from tests.storage.test_redis_hot import wait_for_subscriber

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def serving_cluster(workdir: Path, env_extra: dict[str, str]) -> Iterator[str]:
    port = free_port()
    log = workdir / "serve-cluster.log"
    env = {**os.environ, "MARKETPIPE_API__RATE_LIMIT": "100000/minute", **env_extra}
    env.pop("MARKETPIPE_API__TOKEN", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "marketpipe.cli", "serve", "--backend", "cluster",
         "--port", str(port)],
        cwd=workdir, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve --backend cluster exited:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/v1/system/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy in 90 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def cluster_served(
    recorded_batches: list[CommitBatch],
    postgres_dsn: str,
    redis_url: str,
    s3_bucket: S3Endpoint,
    tmp_path: Path,
) -> Iterator[tuple[str, RedisHotTier]]:
    """What the cluster roles would have written for the recorded files, and the API on it."""
    warm = PostgresWarehouse(postgres_dsn)
    warm.migrate()
    hot = RedisHotTier(redis_url, candles_per_series=4)
    location = S3Location(
        s3_bucket.bucket, "lake", s3_bucket.endpoint, s3_bucket.region, s3_bucket.access_key,
        s3_bucket.secret_key,
    )  # fmt: skip
    lake = s3_lake(location)
    for batch in recorded_batches:
        warm.commit(batch)
        hot.apply(batch)
        lake.write_trades(batch.trades)
    warm.close()
    env = {
        "MARKETPIPE_CLUSTER__POSTGRES_DSN": postgres_dsn,
        "MARKETPIPE_CLUSTER__REDIS_URL": redis_url,
        "MARKETPIPE_CLUSTER__S3_ENDPOINT": s3_bucket.endpoint,
        "MARKETPIPE_CLUSTER__S3_BUCKET": s3_bucket.bucket,
        "MARKETPIPE_CLUSTER__S3_ACCESS_KEY": s3_bucket.access_key,
        "MARKETPIPE_CLUSTER__S3_SECRET_KEY": s3_bucket.secret_key,
    }
    with serving_cluster(tmp_path, env) as base:
        yield base, hot
    hot.close()


KLINE_QUERIES = [
    {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000},
    {"symbol": "BTCUSDT", "interval": "5m"},
    {"symbol": "BTCUSDT", "interval": "1h"},
    {"symbol": "BTCUSDT", "interval": "1m", "limit": 3},
    {"symbol": "BTCUSDT", "interval": "1m", "startTime": 1723161480000, "endTime": 1723161720000},
]


# Kline row fields that are sums of floats: volume, quote volume, taker buy base and quote.
SUM_FIELDS = (5, 7, 9, 10)


def assert_same_klines(
    cluster: list[list[object]], embedded: list[list[object]], params: object
) -> None:
    """The same rows, field for field; the float sums within 1e-12 relative. The two stores
    were filled by replays in different batch sizes (500 here, the default there), and a
    window's sum over batches is rounded at other places than one sum over a batch."""
    assert len(cluster) == len(embedded), params
    for c, e in zip(cluster, embedded, strict=True):
        assert [v for i, v in enumerate(c) if i not in SUM_FIELDS] == [
            v for i, v in enumerate(e) if i not in SUM_FIELDS
        ], params
        for i in SUM_FIELDS:
            assert float(str(c[i])) == pytest.approx(float(str(e[i])), rel=1e-12), (params, i)


def test_klines_equal_embedded_mode(cluster_served: tuple[str, RedisHotTier], served: str) -> None:
    base, _ = cluster_served
    for params in KLINE_QUERIES:
        cluster = httpx.get(f"{base}/api/v3/klines", params=params)  # type: ignore[arg-type]
        embedded = httpx.get(f"{served}/api/v3/klines", params=params)  # type: ignore[arg-type]
        assert cluster.status_code == embedded.status_code == 200
        assert_same_klines(cluster.json(), embedded.json(), params)
    full = httpx.get(f"{base}/api/v3/klines", params=KLINE_QUERIES[0]).json()  # type: ignore[arg-type]
    assert len(full) == 12 and sum(r[8] for r in full) == 19_904
    health = httpx.get(f"{base}/api/v1/system/health").json()
    assert health["components"]["postgres"]["status"] == "ok"
    assert health["components"]["redis"]["status"] == "ok"


async def test_live_klines_reach_websocket_clients_through_redis(
    cluster_served: tuple[str, RedisHotTier], redis_url: str
) -> None:
    base, hot = cluster_served
    url = base.replace("http", "ws") + "/ws/btcusdt@kline_1m"
    await asyncio.to_thread(wait_for_subscriber, redis_url, hot.channel("candles"))
    open_time = 1723161600000000 + 3600 * 1_000_000  # a new window, 01:00
    candle = Candle(
        "binance", "BTC-USDT", "1m", open_time, open_time + 60_000_000, 61000.0, 61010.0,
        60990.0, 61005.5, 2.0, 122011.0, 3, 1.0, 61000.0, 61005.5, 9, 11, False, 0,
    )  # fmt: skip
    async with connect(url) as ws:
        message: dict[str, object] = {}
        for _ in range(50):  # the hub starts listening once a client is connected
            await asyncio.to_thread(hot.apply, CommitBatch(candles=[candle]))
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                break
            except TimeoutError:
                continue
    kline = message["k"]
    assert isinstance(kline, dict)
    assert kline["t"] == open_time // 1000 and kline["c"] == "61005.50000000"
    assert kline["x"] is False and kline["n"] == 3


@pytest.fixture
def bigquery_served(
    recorded_batches: list[CommitBatch],
    bigquery_location: BigQueryLocation,
    gcs_bucket: GcsEndpoint,
    redis_url: str,
    tmp_path: Path,
) -> Iterator[str]:
    """The same, with the Google Cloud stores: BigQuery warm, GCS lake (and Redis hot)."""
    warm = BigQueryWarehouse(bigquery_location)
    warm.migrate()
    hot = RedisHotTier(redis_url, prefix="bq", candles_per_series=4)
    lake = gcs_lake(GcsLocation(gcs_bucket.bucket, "lake", gcs_bucket.endpoint))
    size = -(-len(recorded_batches) // 4)  # four commits: the emulator is slow per statement
    for start in range(0, len(recorded_batches), size):
        batch = merge_batches(recorded_batches[start : start + size])
        warm.commit(batch)
        hot.apply(batch)
        lake.write_trades(batch.trades)
    warm.close()
    env = {
        "MARKETPIPE_CLUSTER__WAREHOUSE": "bigquery",
        "MARKETPIPE_CLUSTER__LAKE": "gcs",
        "MARKETPIPE_CLUSTER__REDIS_URL": redis_url,
        "MARKETPIPE_CLUSTER__REDIS_PREFIX": "bq",
        "MARKETPIPE_GCP__PROJECT": bigquery_location.project,
        "MARKETPIPE_GCP__BIGQUERY_DATASET": bigquery_location.dataset,
        "MARKETPIPE_GCP__BIGQUERY_ENDPOINT": bigquery_location.endpoint or "",
        "MARKETPIPE_GCP__BIGQUERY_TIMEOUT_S": "20",
        "MARKETPIPE_GCP__GCS_ENDPOINT": gcs_bucket.endpoint,
        "MARKETPIPE_GCP__GCS_BUCKET": gcs_bucket.bucket,
    }
    with serving_cluster(tmp_path, env) as base:
        yield base
    hot.close()


def test_klines_over_bigquery_equal_embedded_mode(bigquery_served: str, served: str) -> None:
    for params in KLINE_QUERIES:
        cloud = httpx.get(f"{bigquery_served}/api/v3/klines", params=params)  # type: ignore[arg-type]
        embedded = httpx.get(f"{served}/api/v3/klines", params=params)  # type: ignore[arg-type]
        assert cloud.status_code == embedded.status_code == 200
        assert_same_klines(cloud.json(), embedded.json(), params)
    full = httpx.get(f"{bigquery_served}/api/v3/klines", params=KLINE_QUERIES[0]).json()  # type: ignore[arg-type]
    assert len(full) == 12 and sum(r[8] for r in full) == 19_904
    health = httpx.get(f"{bigquery_served}/api/v1/system/health").json()
    assert health["components"]["bigquery"]["status"] == "ok"
