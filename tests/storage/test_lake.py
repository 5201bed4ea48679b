from pathlib import Path

from marketpipe.model.records import Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.storage.lake import ParquetLake

DAY = 86_400_000_000
T0 = 1_723_161_600_000_000 - 60_000_000  # 2024-08-08 23:59


def trades(ids: range) -> list[Trade]:
    return [Trade("binance", "BTC-USDT", i, 1.0, 1.0, "sell", T0 + i * 1_000_000, T0) for i in ids]


def test_files_are_partitioned_by_date_and_named_by_trade_ids(tmp_path: Path) -> None:
    lake = ParquetLake(tmp_path)
    assert lake.write_trades(to_table(trades(range(50, 70)), TRADE_SCHEMA)) == 2  # spans midnight
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert names == [
        "trades/exchange=binance/symbol=BTC-USDT/date=2024-08-08/part-50-59.parquet",
        "trades/exchange=binance/symbol=BTC-USDT/date=2024-08-09/part-60-69.parquet",
    ]


def test_writing_the_same_trades_again_is_idempotent(tmp_path: Path) -> None:
    lake = ParquetLake(tmp_path)
    table = to_table(trades(range(1, 30)), TRADE_SCHEMA)
    lake.write_trades(table)
    lake.write_trades(table)
    read = lake.read_trades()
    assert read.column("trade_id").to_pylist() == list(range(1, 30))
    assert not list(tmp_path.rglob(".tmp-*"))
    window = lake.read_trades(start=T0 + 10 * 1_000_000, end=T0 + 12 * 1_000_000)
    assert window.column("trade_id").to_pylist() == [10, 11]
