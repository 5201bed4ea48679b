"""The lake on a real S3-compatible server and on local disk, one implementation: same layout,
atomic deterministic parts, duplicate-free reads, and crash-safe dedup compaction."""

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from marketpipe.model.errors import StorageError
from marketpipe.model.records import Candle, Trade
from marketpipe.model.schemas import CANDLE_SCHEMA, TRADE_SCHEMA, from_table, to_table
from marketpipe.storage.lake import CANDLES, TMP_PREFIX, TRADES, ParquetLake
from marketpipe.storage.lake_compaction import compact
from marketpipe.storage.s3 import S3Location, s3_lake
from tests.servers.s3 import S3Endpoint

pytestmark = pytest.mark.integration

T0 = 1_723_161_600_000_000 - 60_000_000  # 2024-08-08 23:59 UTC
SECOND = 1_000_000


def trades(ids: range, price: float = 1.0) -> pa.Table:
    rows = [Trade("binance", "BTC-USDT", i, price, 0.5, "buy", T0 + i * SECOND, T0) for i in ids]
    return to_table(rows, TRADE_SCHEMA)


def candle(minute: int, revision: int = 0, close: float = 2.0) -> Candle:
    open_time = T0 + minute * 60 * SECOND
    return Candle(
        "binance", "BTC-USDT", "1m", open_time, open_time + 60 * SECOND, 1.0, 3.0, 0.5, close,
        2.0, 4.0, 2, 1.0, 2.0, 2.0, 1, 2, True, revision,
    )  # fmt: skip


def location(s3: S3Endpoint, prefix: str = "lake") -> S3Location:
    return S3Location(s3.bucket, prefix, s3.endpoint, s3.region, s3.access_key, s3.secret_key)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> ParquetLake:
    if request.param == "local":
        return ParquetLake(tmp_path / "lake")
    return s3_lake(location(request.getfixturevalue("s3_bucket")))


def keys(lake: ParquetLake) -> list[str]:
    selector = pafs.FileSelector(lake.root, recursive=True, allow_not_found=True)
    return sorted(
        info.path.removeprefix(lake.root + "/")
        for info in lake.filesystem.get_file_info(selector)
        if info.is_file
    )


def test_s3_and_local_lakes_have_the_same_layout(s3_bucket: S3Endpoint, tmp_path: Path) -> None:
    local, remote = ParquetLake(tmp_path), s3_lake(location(s3_bucket))
    for lake in (local, remote):
        assert lake.write_trades(trades(range(50, 70))) == 2  # spans midnight
        assert lake.write_candles(to_table([candle(0), candle(1)], CANDLE_SCHEMA)) == 2
    assert (
        keys(remote)
        == keys(local)
        == [
            "candles/interval=1m/exchange=binance/symbol=BTC-USDT/date=2024-08-08/"
            f"part-{T0}-{T0}.parquet",
            "candles/interval=1m/exchange=binance/symbol=BTC-USDT/date=2024-08-09/"
            f"part-{T0 + 60 * SECOND}-{T0 + 60 * SECOND}.parquet",
            "trades/exchange=binance/symbol=BTC-USDT/date=2024-08-08/part-50-59.parquet",
            "trades/exchange=binance/symbol=BTC-USDT/date=2024-08-09/part-60-69.parquet",
        ]
    )
    assert remote.read_trades().equals(local.read_trades())
    assert remote.read_trades().column("trade_id").to_pylist() == list(range(50, 70))
    assert remote.root == f"{s3_bucket.bucket}/lake"


def test_writes_are_deterministic_idempotent_and_leave_no_temporaries(lake: ParquetLake) -> None:
    table = trades(range(1, 30))
    lake.write_trades(table)
    before = keys(lake)
    lake.write_trades(table)
    assert keys(lake) == before
    assert not [k for k in before if TMP_PREFIX in k]
    window = lake.read_trades(start=T0 + 10 * SECOND, end=T0 + 12 * SECOND)
    assert window.column("trade_id").to_pylist() == [10, 11]


def test_a_half_written_temporary_is_invisible_and_cleaned_up_later(lake: ParquetLake) -> None:
    lake.write_trades(trades(range(1, 5)))
    directory = lake.partition_dir(TRADES, ("binance", "BTC-USDT"), "2024-08-08")
    # What a crash mid-write leaves behind (locally; S3 never shows an unfinished upload).
    with lake.filesystem.open_output_stream(f"{directory}/{TMP_PREFIX}x-part-9-9.parquet") as f:
        f.write(b"PAR1 truncated")
    assert lake.read_trades().column("trade_id").to_pylist() == [1, 2, 3, 4]
    assert compact(lake, TRADES, before=date(2100, 1, 1)).temporaries_removed == 0  # too new
    result = compact(lake, TRADES, before=date(2100, 1, 1), now_s=4e9)
    assert result.temporaries_removed == 1
    assert not [k for k in keys(lake) if TMP_PREFIX in k]


def test_compaction_merges_a_days_parts_into_one_without_duplicates(lake: ParquetLake) -> None:
    # Three exports of one day, overlapping (a redelivered batch), plus the next day.
    lake.write_trades(trades(range(1, 20)))
    lake.write_trades(trades(range(15, 40)))
    lake.write_trades(trades(range(30, 45)))
    lake.write_trades(trades(range(61, 70)))  # 2024-08-09
    expected = list(range(1, 45)) + list(range(61, 70))
    assert lake.read_trades().column("trade_id").to_pylist() == expected  # reads dedup already

    result = compact(lake, TRADES, before=date(2024, 8, 9))  # only finished days
    assert (result.partitions, result.files_in, result.rows_in, result.rows_out) == (1, 3, 59, 44)
    assert keys(lake) == [
        "trades/exchange=binance/symbol=BTC-USDT/date=2024-08-08/part-1-44.parquet",
        "trades/exchange=binance/symbol=BTC-USDT/date=2024-08-09/part-61-69.parquet",
    ]
    assert lake.read_trades().column("trade_id").to_pylist() == expected
    # The compacted file holds each trade once (not only the deduplicating reader's view).
    only = pq.read_table(f"{lake.root}/{keys(lake)[0]}", filesystem=lake.filesystem)
    assert only.column("trade_id").to_pylist() == list(range(1, 45))
    assert compact(lake, TRADES, before=date(2024, 8, 10)).partitions == 0  # one file each


def test_a_crash_between_writing_and_deleting_is_harmless(lake: ParquetLake) -> None:
    lake.write_trades(trades(range(1, 10)))
    lake.write_trades(trades(range(5, 20)))
    directory = lake.partition_dir(TRADES, ("binance", "BTC-USDT"), "2024-08-08")
    # Step 2 done, step 3 never ran: the compacted output sits beside its inputs.
    lake.write_part(TRADES, trades(range(1, 20)), directory)
    assert len(keys(lake)) == 3
    assert lake.read_trades().column("trade_id").to_pylist() == list(range(1, 20))
    compact(lake, TRADES, before=date(2024, 8, 9))  # the next run finishes the job
    assert keys(lake) == [
        "trades/exchange=binance/symbol=BTC-USDT/date=2024-08-08/part-1-19.parquet"
    ]
    assert lake.read_trades().column("trade_id").to_pylist() == list(range(1, 20))


def test_candle_revisions_win_in_reads_and_compaction(lake: ParquetLake) -> None:
    lake.write_candles(to_table([candle(0), candle(1)], CANDLE_SCHEMA))
    # A late trade revised minute 1 after the first archive; archived again as its own part.
    lake.write_candles(to_table([candle(1, revision=1, close=2.5)], CANDLE_SCHEMA))

    def read() -> list[tuple[int, int]]:
        stored = from_table(lake.read_candles(interval="1m"), Candle)
        return [(c.open_time, c.revision) for c in stored]

    assert read() == [(T0, 0), (T0 + 60 * SECOND, 1)]
    compact(lake, CANDLES, before=date(2024, 8, 10))
    assert read() == [(T0, 0), (T0 + 60 * SECOND, 1)]
    closes = lake.read_candles(interval="1m", start=T0 + 60 * SECOND).column("close")
    assert closes.to_pylist() == [2.5]


def test_a_missing_bucket_is_a_clear_error(s3_bucket: S3Endpoint) -> None:
    missing = S3Location(
        "no-such-bucket", "", s3_bucket.endpoint, s3_bucket.region, s3_bucket.access_key,
        s3_bucket.secret_key,
    )  # fmt: skip
    with pytest.raises(StorageError, match="no-such-bucket"):
        s3_lake(missing)
    wrong_key = S3Location(
        s3_bucket.bucket, "", s3_bucket.endpoint, s3_bucket.region, "nobody", "wrong"
    )
    with pytest.raises(StorageError, match=r"not usable|does not exist"):
        s3_lake(wrong_key).write_trades(trades(range(1, 2)))
