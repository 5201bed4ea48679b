"""The lake on a real GCS emulator (fake-gcs-server): the recorded trades land under
deterministic names, read back equal to a local lake's, once each however often they are
written; a wrong bucket, a dead endpoint or a bad key file fail at start with a clear error."""

import json
import os
import socket
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.storage.gcs import CREDENTIALS_VARIABLE, GcsLocation, gcs_lake
from marketpipe.storage.lake import TMP_PREFIX, TRADES, ParquetLake
from marketpipe.storage.lake_compaction import compact
from tests.servers.gcs import PROJECT, GcsEndpoint
from tests.servers.scripts import ScriptServer, server_dir

pytestmark = pytest.mark.integration

FIRST_ID, LAST_ID = 3_735_683_259, 3_735_703_162  # tests/data's README: 19,904 consecutive ids
RECORDED_TRADES = 19_904


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The key-file tests set the variable; monkeypatch restores the caller's afterwards.
    monkeypatch.setenv(CREDENTIALS_VARIABLE, "")
    monkeypatch.delenv(CREDENTIALS_VARIABLE)


def location(
    gcs: GcsEndpoint, prefix: str = "lake", *, credentials_file: str | None = None,
    project: str | None = None, retry_s: float = 5.0,
) -> GcsLocation:  # fmt: skip
    return GcsLocation(gcs.bucket, prefix, gcs.endpoint, credentials_file, project, retry_s)


def objects(lake: ParquetLake) -> list[str]:
    selector = pafs.FileSelector(lake.root, recursive=True, allow_not_found=True)
    return sorted(
        info.path.removeprefix(lake.root + "/")
        for info in lake.filesystem.get_file_info(selector)
        if info.is_file
    )


def write_all(lake: ParquetLake, batches: list[CommitBatch]) -> None:
    for batch in batches:
        lake.write_trades(batch.trades)


def expected_names(batches: list[CommitBatch]) -> list[str]:
    """Each batch's part names, computed from its trades alone: one part per UTC day, named
    by its first and last trade id."""
    names = []
    for batch in batches:
        ids: dict[str, list[int]] = defaultdict(list)
        for row in batch.trades.select(["exchange", "symbol", "trade_id", "ts_event"]).to_pylist():
            day = f"exchange={row['exchange']}/symbol={row['symbol']}/date={row['ts_event']:%F}"
            ids[day].append(row["trade_id"])
        names += [f"trades/{d}/part-{min(i)}-{max(i)}.parquet" for d, i in ids.items()]
    return sorted(names)


def first_trades(batches: list[CommitBatch]) -> pa.Table:
    return next(b.trades for b in batches if b.trades.num_rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the location, no server ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "root"),
    [("", "b"), ("/", "b"), ("lake", "b/lake"), ("/lake/", "b/lake"), ("a//b/", "b/a/b")],
)
def test_the_root_is_bucket_and_prefix_without_empty_segments(prefix: str, root: str) -> None:
    assert GcsLocation("b", prefix).root == root
    assert GcsLocation("b", prefix).uri == f"gs://{root}"


@pytest.mark.parametrize("endpoint", ["127.0.0.1:4443", "ftp://127.0.0.1:4443", "http://"])
def test_an_endpoint_needs_an_http_scheme(endpoint: str) -> None:
    with pytest.raises(StorageError, match="needs a scheme"):
        gcs_lake(GcsLocation("b", endpoint=endpoint))


def test_the_retry_limit_must_be_positive() -> None:
    with pytest.raises(StorageError, match="retry_s must be positive"):
        gcs_lake(GcsLocation("b", endpoint="http://127.0.0.1:1", retry_s=0))


# ---- the lake on the emulator ---------------------------------------------------------------


def test_recorded_trades_land_once_under_deterministic_names(
    gcs_bucket: GcsEndpoint, recorded_batches: list[CommitBatch], tmp_path: Path
) -> None:
    remote, local = gcs_lake(location(gcs_bucket)), ParquetLake(tmp_path / "lake")
    assert remote.root == f"{gcs_bucket.bucket}/lake"
    batches = [b for b in recorded_batches if b.trades.num_rows]
    for lake in (remote, local):
        write_all(lake, batches)
    names = objects(remote)
    assert names == objects(local) == expected_names(batches)
    assert not [n for n in names if TMP_PREFIX in n]

    stored = remote.read_trades()
    assert stored.equals(local.read_trades())
    assert stored.num_rows == RECORDED_TRADES
    assert stored.column("trade_id").to_pylist() == list(range(FIRST_ID, LAST_ID + 1))

    write_all(remote, batches)  # a redelivery: the same names, replaced, none added
    assert objects(remote) == names
    # Each trade once in the objects themselves, not only through the deduplicating reader.
    files = [f"{remote.root}/{n}" for n in names]
    assert sum(pq.read_metadata(f, filesystem=remote.filesystem).num_rows for f in files) == (
        RECORDED_TRADES
    )
    assert remote.read_trades().equals(stored)


def test_compaction_on_gcs_leaves_one_part_a_day_and_the_same_trades(
    gcs_bucket: GcsEndpoint, recorded_batches: list[CommitBatch]
) -> None:
    lake = gcs_lake(location(gcs_bucket, prefix=""))
    write_all(lake, recorded_batches)
    before = lake.read_trades()
    result = compact(lake, TRADES, before=date(2024, 8, 10))
    assert (result.partitions, result.rows_out) == (2, RECORDED_TRADES)
    ids: dict[str, list[int]] = defaultdict(list)
    days = pc.strftime(before.column("ts_event"), "%F").to_pylist()
    for day, trade_id in zip(days, before.column("trade_id").to_pylist(), strict=True):
        ids[day].append(trade_id)
    assert sorted(ids) == ["2024-08-08", "2024-08-09"]
    assert objects(lake) == [
        f"trades/exchange=binance/symbol=BTC-USDT/date={d}/part-{min(i)}-{max(i)}.parquet"
        for d, i in sorted(ids.items())
    ]
    assert lake.read_trades().equals(before)


def test_parts_are_uploaded_straight_to_their_final_name(
    gcs_bucket: GcsEndpoint, recorded_batches: list[CommitBatch]
) -> None:
    """On GCS, as on S3, an upload is visible only once complete, so the lake writes each part
    to its final name: the same objects and rows as temp-then-move, in half the requests,
    and no directory markers."""
    direct = gcs_lake(location(gcs_bucket, prefix="direct"))
    assert direct.rename_to_publish is False
    moved = gcs_lake(location(gcs_bucket, prefix="moved"))
    moved.rename_to_publish = True  # what a local directory does
    for lake in (moved, direct):
        lake.write_trades(first_trades(recorded_batches))
    assert objects(direct) == objects(moved)
    assert direct.read_trades().equals(moved.read_trades())

    def markers(lake: ParquetLake) -> int:
        selector = pafs.FileSelector(lake.root, recursive=True)
        infos = lake.filesystem.get_file_info(selector)
        return sum(1 for i in infos if i.type == pafs.FileType.Directory)

    assert markers(direct) == 0 < markers(moved)  # create_dir writes placeholder objects


# ---- failing at start ---------------------------------------------------------------------


def test_a_missing_bucket_fails_at_start_naming_bucket_and_endpoint(
    gcs_bucket: GcsEndpoint, recorded_batches: list[CommitBatch]
) -> None:
    missing = GcsEndpoint(gcs_bucket.endpoint, f"{gcs_bucket.bucket}-missing")
    with pytest.raises(StorageError) as error:
        gcs_lake(location(missing))
    assert f"bucket '{missing.bucket}' does not exist at {missing.endpoint}" in str(error.value)
    with pytest.raises(StorageError, match="missing project id"):
        gcs_lake(location(missing), create_bucket=True)  # creating one needs a project

    lake = gcs_lake(location(missing, project=PROJECT), create_bucket=True)
    trades = first_trades(recorded_batches)
    lake.write_trades(trades)
    assert gcs_lake(location(missing)).read_trades().equals(trades)  # now it exists


def test_a_dead_endpoint_fails_within_the_retry_limit(gcs_bucket: GcsEndpoint) -> None:
    dead = GcsEndpoint(f"http://127.0.0.1:{free_port()}", gcs_bucket.bucket)
    began = time.monotonic()
    with pytest.raises(StorageError) as error:
        gcs_lake(location(dead, retry_s=1))
    assert time.monotonic() - began < 10
    assert f"GCS at {dead.endpoint} is not usable (bucket '{dead.bucket}')" in str(error.value)


# ---- credentials ----------------------------------------------------------------------------


def key_file(path: Path, private_key: str) -> Path:
    key = {
        "type": "service_account", "project_id": PROJECT, "private_key_id": "0123abcd",
        "private_key": private_key, "client_email": f"lake@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "http://127.0.0.1:1/token",
    }  # fmt: skip
    path.write_text(json.dumps(key))
    return path


def test_a_service_account_key_file_signs_the_requests(
    gcs_bucket: GcsEndpoint,
    recorded_batches: list[CommitBatch],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    good = key_file(tmp_path / "good.json", pem)
    lake = gcs_lake(location(gcs_bucket, credentials_file=str(good)))
    assert os.environ[CREDENTIALS_VARIABLE] == str(good)
    trades = first_trades(recorded_batches)
    lake.write_trades(trades)
    assert lake.read_trades().equals(trades)

    # The same file with a broken key is refused by the client: the file is what it uses.
    # The error names the problem, never the key.
    monkeypatch.delenv(CREDENTIALS_VARIABLE)  # set to good.json by the lake above
    secret = "MIIEvSECRETSECRETSECRET"
    bad = key_file(tmp_path / "bad.json", f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END")
    with pytest.raises(StorageError) as error:
        gcs_lake(location(gcs_bucket, credentials_file=str(bad), retry_s=1))
    assert "ServiceAccountCredentials" in str(error.value)  # it means the file was read
    assert secret not in str(error.value)


def test_an_unusable_key_file_is_refused_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = "http://127.0.0.1:1"
    missing = tmp_path / "missing.json"
    with pytest.raises(StorageError, match=f"{missing} is not readable"):
        gcs_lake(GcsLocation("b", endpoint=dead, credentials_file=str(missing)))
    (tmp_path / "plain.json").write_text("hunter2, not json")
    with pytest.raises(StorageError, match="is not JSON") as error:
        gcs_lake(GcsLocation("b", endpoint=dead, credentials_file=str(tmp_path / "plain.json")))
    assert "hunter2" not in str(error.value)
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(StorageError, match="has no key type"):
        gcs_lake(GcsLocation("b", endpoint=dead, credentials_file=str(tmp_path / "list.json")))
    other = key_file(tmp_path / "other.json", "x")
    monkeypatch.setenv(CREDENTIALS_VARIABLE, str(other))
    mine = key_file(tmp_path / "mine.json", "x")
    with pytest.raises(StorageError, match="conflicts with GOOGLE_APPLICATION_CREDENTIALS"):
        gcs_lake(GcsLocation("b", endpoint=dead, credentials_file=str(mine)))


# ---- scripts/servers/gcs.sh -----------------------------------------------------------------


def test_the_script_stops_and_reports_status_and_can_keep_objects(
    recorded_batches: list[CommitBatch],
) -> None:
    server = ScriptServer("gcs", server_dir("gcs"), env={"GCS_BACKEND": "filesystem"})
    try:
        server.start()
        assert server.running()
        kept = GcsLocation("kept", "lake", server.url, project=PROJECT, retry_s=1)
        trades = first_trades(recorded_batches)
        gcs_lake(kept, create_bucket=True).write_trades(trades)
        server.stop()
        assert not server.running()
        with pytest.raises(StorageError, match=f"GCS at {server.url} is not usable"):
            gcs_lake(kept)
        server.start()  # same port and data dir: the filesystem backend kept the objects
        assert gcs_lake(kept).read_trades().equals(trades)
    finally:
        server.destroy()
    assert not server.running()
    assert not server.data_dir.exists()  # a status check does not bring it back
