from pathlib import Path

import pyarrow as pa
import pytest

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import StorageError
from marketpipe.model.records import Alert, Candle, Position, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.storage.duckdb_warm import DuckDBWarehouse

T0 = 1_723_161_600_000_000


def candle(revision: int = 0, close: float = 2.0) -> Candle:
    return Candle(
        "binance",
        "BTC-USDT",
        "1m",
        T0,
        T0 + 60_000_000,
        1.0,
        3.0,
        0.5,
        close,
        2.0,
        4.0,
        2,
        1.0,
        2.0,
        2.0,
        1,
        2,
        revision > 0,
        revision,
    )


def batch() -> CommitBatch:
    trades = to_table(
        [Trade("binance", "BTC-USDT", i, 1.0, 1.0, "buy", T0 + i, T0 + i) for i in (1, 2)],
        TRADE_SCHEMA,
    )
    alert = Alert("a1", "whale_trade", "warning", "binance", "BTC-USDT", T0, 1e5, 1e5, "{}")
    position = Position("binance", "BTC-USDT", 2, T0 + 2, [(1, 2)], 0, 0, 2, 0)
    return CommitBatch(trades=trades, candles=[candle()], alerts=[alert], positions=[position])


def test_commit_then_read_back_every_table(tmp_path: Path) -> None:
    warm = DuckDBWarehouse(tmp_path / "w.duckdb")
    warm.commit(batch())
    assert warm.counts()["trades_recent"] == 2
    assert warm.candles(
        exchange="binance", symbol="BTC-USDT", interval="1m", start=None, end=None, limit=None
    ) == [candle()]
    assert warm.positions()[0].id_ranges == [(1, 2)]
    assert [
        t.trade_id
        for t in warm.trades(exchange=None, symbol=None, start=T0 + 2, end=None, limit=None)
    ] == [2]


def test_candle_upserts_replace_and_alerts_insert_or_ignore(tmp_path: Path) -> None:
    warm = DuckDBWarehouse(tmp_path / "w.duckdb")
    warm.commit(batch())
    warm.commit(CommitBatch(candles=[candle(revision=1, close=2.5)], alerts=batch().alerts))
    (stored,) = warm.candles(
        exchange=None, symbol=None, interval="1m", start=None, end=None, limit=None
    )
    assert stored.revision == 1 and stored.close == 2.5
    assert len(warm.alerts(exchange=None, symbol=None, start=None, end=None, limit=None)) == 1


def test_a_failing_batch_rolls_back_entirely(tmp_path: Path) -> None:
    warm = DuckDBWarehouse(tmp_path / "w.duckdb")
    bad = batch()
    # A trade table with an impossible shape fails mid-transaction, after candles were written.
    bad.trades = pa.table({"oops": [1]})
    with pytest.raises(StorageError, match="rolled back"):
        warm.commit(bad)
    assert warm.counts() == {
        "trades_recent": 0,
        "late_trades": 0,
        "candles": 0,
        "alerts": 0,
        "dead_letters": 0,
    }
    warm.commit(batch())  # the store is usable afterwards
    assert warm.counts()["trades_recent"] == 2


def test_a_second_writer_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    first = DuckDBWarehouse(path)
    try:
        import subprocess
        import sys

        code = (
            "from pathlib import Path; from marketpipe.storage.duckdb_warm import DuckDBWarehouse\n"
            f"DuckDBWarehouse(Path({str(path)!r}))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode != 0 and "cannot open warm store" in result.stderr
    finally:
        first.close()


def test_a_data_dir_that_cannot_be_created_is_a_clear_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should go")
    with pytest.raises(StorageError, match="cannot open warm store"):
        DuckDBWarehouse(blocker / "data" / "w.duckdb")


DAY = 86_400_000_000


def test_a_lake_export_reads_one_partition_at_a_time_split_at_utc_midnight(
    tmp_path: Path,
) -> None:
    """export_rows yields each (exchange, symbol, UTC day) of the plan once, alone, and all of
    them together are exactly the plan's trades; 23:59:59.999999 and 00:00 fall on two days."""
    midnight = T0 + DAY  # 2024-08-10 00:00 UTC
    rows = [
        ("binance", "BTC-USDT", 1, midnight - 1),
        ("binance", "BTC-USDT", 2, midnight),
        ("binance", "ETH-USDT", 1, midnight - 1),
        ("coinbase", "BTC-USD", 7, midnight + 5),
        ("coinbase", "BTC-USD", 8, midnight + DAY - 1),
    ]
    trades = [Trade(ex, sym, i, 1.0, 1.0, "buy", ts, ts) for ex, sym, i, ts in rows]
    warm = DuckDBWarehouse(tmp_path / "w.duckdb")
    warm.commit(CommitBatch(trades=to_table(trades[:3], TRADE_SCHEMA)))
    warm.commit(CommitBatch(trades=to_table(trades[3:], TRADE_SCHEMA)))
    plan = warm.pending_export()
    assert plan is not None
    parts = list(warm.export_rows(*plan))

    def partition(table: pa.Table) -> set[tuple[str, str, int]]:
        return {
            (ex, sym, ts // DAY)
            for ex, sym, ts in zip(
                table.column("exchange").to_pylist(),
                table.column("symbol").to_pylist(),
                table.column("ts_event").cast(pa.int64()).to_pylist(),
                strict=True,
            )
        }

    assert [partition(p) for p in parts] == [
        {("binance", "BTC-USDT", T0 // DAY)},
        {("binance", "BTC-USDT", T0 // DAY + 1)},
        {("binance", "ETH-USDT", T0 // DAY)},
        {("coinbase", "BTC-USD", T0 // DAY + 1)},
    ]
    assert all(p.schema == TRADE_SCHEMA for p in parts)
    exported = sorted(
        (r["exchange"], r["symbol"], r["trade_id"]) for p in parts for r in p.to_pylist()
    )
    assert exported == sorted((ex, sym, i) for ex, sym, i, _ in rows)
    # Only the plan's batches: a later batch waits for the next plan.
    warm.commit(CommitBatch(trades=to_table([Trade(
        "binance", "BTC-USDT", 3, 1.0, 1.0, "buy", midnight + 9, midnight + 9
    )], TRADE_SCHEMA)))  # fmt: skip
    assert sum(p.num_rows for p in warm.export_rows(*plan)) == len(rows)
    warm.close()
