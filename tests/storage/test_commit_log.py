"""The commit log: round trip, torn tails, recovery into the warm store, and kill -9."""

import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from harness.reference import raw_trades, reference_candles
from marketpipe.model.batch import CommitBatch, merge_batches
from marketpipe.model.records import Alert, MarketSnapshot, Position, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.storage.commit_log import CommitLog
from marketpipe.storage.embedded import EmbeddedStore
from tests.conftest import BINANCE_08

T0 = 1_723_161_600_000_000


def batch(first_id: int, n: int = 3) -> CommitBatch:
    ids = range(first_id, first_id + n)
    trades = to_table(
        [Trade("binance", "BTC-USDT", i, 100.0 + i, 0.5, "buy", T0 + i, T0 + i) for i in ids],
        TRADE_SCHEMA,
    )
    last = first_id + n - 1
    alert = Alert(
        f"a{first_id}", "whale_trade", "warning", "binance", "BTC-USDT", T0, 1e5, 1e5, "{}"
    )
    position = Position("binance", "BTC-USDT", last, T0 + last, [(1, last)], 0, 0, last, 0)
    return CommitBatch(trades=trades, alerts=[alert], positions=[position])


def test_entries_read_back_what_was_appended_in_order(tmp_path: Path) -> None:
    log = CommitLog(tmp_path / "commit.log", durability="group")
    batches = [batch(1), batch(4), batch(7)]
    for seq, b in enumerate(batches, start=1):
        log.append(seq, b)
    log.close()
    entries = list(CommitLog(tmp_path / "commit.log").entries())
    assert [seq for seq, _ in entries] == [1, 2, 3]
    for (_, got), want in zip(entries, batches, strict=True):
        assert got.trades.equals(want.trades)
        assert got.alerts == want.alerts
        assert got.positions == want.positions


def test_a_torn_tail_is_cut_off_and_the_intact_entries_survive(tmp_path: Path) -> None:
    path = tmp_path / "commit.log"
    log = CommitLog(path, durability="never")
    log.append(1, batch(1))
    log.append(2, batch(4))
    log.close()
    intact = path.stat().st_size
    with path.open("ab") as handle:  # a crash in the middle of the third append
        handle.write(path.read_bytes()[: intact // 3])
    assert [seq for seq, _ in CommitLog(path).entries()] == [1, 2]
    assert path.stat().st_size == intact


def test_opening_the_store_applies_logged_batches_the_warm_store_lacks_once(
    tmp_path: Path,
) -> None:
    # The warm store already holds batch 1; the log holds 1..3 (a crash after committing 2
    # and 3 to the log, before they were materialized).
    store = EmbeddedStore(tmp_path)
    store.commit(batch(1))
    store.close()
    log = CommitLog(tmp_path / "commit.log")
    for seq, b in enumerate([batch(1), batch(4), batch(7)], start=1):
        log.append(seq, b)
    log.close()
    for _ in range(2):  # and opening again changes nothing
        store = EmbeddedStore(tmp_path, read_only=False)
        ids = store.warm.trades(exchange=None, symbol=None, start=None, end=None, limit=None)
        assert [t.trade_id for t in ids] == list(range(1, 10))
        assert store.warm.counts()["alerts"] == 3
        assert store.warm.positions()[0].last_trade_id == 9
        store.close()


def test_log_mode_commits_reach_the_warm_store_and_lake(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, commit_log=True, durability="never", lake_flush_trades=4)
    for first in (1, 4, 7, 10):
        store.commit(batch(first))
    assert len(store.hot.alerts()) == 4  # the hot tier is current at once
    store.sync()
    assert store.warm.counts()["trades_recent"] == 12
    assert store.export_to_lake() + store.exported_trades >= 12
    store.close()
    assert (tmp_path / "commit.log").stat().st_size == 0  # everything applied
    lake = store.lake.read_trades()
    assert sorted(lake.column("trade_id").to_pylist()) == list(range(1, 13))


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from marketpipe.config import load_settings
    from marketpipe.embedded.pipeline import Pipeline
    from marketpipe.sources.replay import ReplayReader
    from marketpipe.storage.embedded import EmbeddedStore

    data_dir, source, stop_after = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    durability = sys.argv[4]
    settings = load_settings(data_dir=data_dir)
    # "timer" with an hour's interval: the kill comes before any fdatasync.
    store = EmbeddedStore(
        data_dir, commit_log=True, durability=durability, fsync_interval_ms=3_600_000
    )
    pipeline = Pipeline(settings, store)
    done = 0
    for chunk in ReplayReader([source]):
        for offset in range(0, chunk.trades.num_rows, 200):
            part = chunk.trades.slice(offset, 200)
            pipeline.ingest(part)
            done += part.num_rows
            if done >= stop_after:
                print(done, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)  # right after a commit returned
    """
)


# Every mode writes before a commit returns, so kill -9 (the page cache survives) loses no
# acknowledged commit in any of them; they differ only under power loss.
DURABILITIES = ["group", "timer", "never"]


@pytest.mark.integration
@pytest.mark.parametrize("durability", DURABILITIES)
def test_kill_9_right_after_log_commits_loses_and_duplicates_nothing(
    tmp_path: Path, durability: str
) -> None:
    data_dir = tmp_path / "data"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data_dir), str(BINANCE_08), "3000", durability],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    acknowledged = int(child.stdout.split()[0])

    store = EmbeddedStore(data_dir)  # recovery applies the log tail
    try:
        stored = pa.concat_tables(store.warm.export_rows(0, 2**62))
        ids = stored.column("trade_id")
        assert stored.num_rows == acknowledged
        assert pc.count_distinct(ids).as_py() == acknowledged
        # The first `acknowledged` trades of the file, by an independent parse.
        truth = raw_trades([BINANCE_08])[:acknowledged]
        assert sorted(ids.to_pylist()) == sorted(t[1] for t in truth)
        position = store.warm.positions()[0]
        assert position.trades_seen == acknowledged
        # Candle upserts survived too: every stored 1m candle's trade count matches SQL over
        # the acknowledged trades (the newest window may be partial in both).
        minutes = {
            (c.open_time // 1000): c.trade_count
            for c in store.warm.candles(
                exchange=None, symbol=None, interval="1m", start=None, end=None, limit=None
            )
        }
        reference = {row[1]: row[8] for row in reference_candles(truth)}
        assert minutes == reference
    finally:
        store.close()


def test_merged_batches_keep_the_latest_candle_and_first_alert() -> None:
    a, b = batch(1), batch(4)
    b.alerts.append(a.alerts[0])
    merged = merge_batches([a, b])
    assert merged.trades.num_rows == 6
    assert [x.alert_id for x in merged.alerts] == ["a1", "a4"]
    assert merged.positions == b.positions
    assert isinstance(merged.trades, pa.Table)


def market_batch(minute: int) -> CommitBatch:
    ts = T0 + minute * 60_000_000
    snapshots = [
        MarketSnapshot("coingecko", asset, "usd", 100.0 + minute, None if asset == "ETH" else 1e9,
                       None, 5e6, 1e6, None, ts, ts + 7)
        for asset in ("BTC", "ETH")
    ]  # fmt: skip
    return CommitBatch(snapshots=snapshots)


def test_logged_market_snapshots_the_warm_store_lacks_are_recovered_once(tmp_path: Path) -> None:
    # A crash after the log append and before DuckDB: the log holds 1..3, DuckDB only 1.
    store = EmbeddedStore(tmp_path)
    store.commit(market_batch(1))
    store.close()
    log = CommitLog(tmp_path / "commit.log")
    for seq, minute in enumerate((1, 2, 3), start=1):
        log.append(seq, market_batch(minute))
    log.close()
    want = sorted((s for m in (1, 2, 3) for s in market_batch(m).snapshots),
                  key=lambda s: (s.ts_source, s.asset))  # fmt: skip
    for _ in range(2):  # opening again changes nothing
        store = EmbeddedStore(tmp_path)
        assert store.warm.market_snapshots(None, None, None) == want
        store.close()


def test_an_entry_written_before_snapshots_existed_still_reads(tmp_path: Path) -> None:
    import msgspec

    # The entry layout before issue 13: the same fields without the trailing snapshots.
    old = msgspec.msgpack.encode([7, b"", b"", [], [], [], [], [], 0])
    (tmp_path / "commit.log").write_bytes(struct.pack("<II", len(old), zlib.crc32(old)) + old)
    [(seq, entry)] = list(CommitLog(tmp_path / "commit.log").entries())
    assert seq == 7 and entry.snapshots == [] and entry.is_empty


_MARKET_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from marketpipe.storage.embedded import EmbeddedStore
    from tests.storage.test_commit_log import market_batch

    store = EmbeddedStore(
        Path(sys.argv[1]), commit_log=True, durability=sys.argv[2], fsync_interval_ms=3_600_000
    )
    for minute in range(20):
        store.commit(market_batch(minute))
    print(20, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # right after the last commit returned
    """
)


@pytest.mark.parametrize("durability", DURABILITIES)
def test_kill_9_right_after_market_commits_loses_no_snapshot(
    tmp_path: Path, durability: str
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _MARKET_CHILD, str(tmp_path / "data"), durability],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    store = EmbeddedStore(tmp_path / "data")
    try:
        stored = store.warm.market_snapshots(None, None, None)
        assert len(stored) == 40
        assert {(s.asset, s.ts_source) for s in stored} == {
            (s.asset, s.ts_source) for m in range(20) for s in market_batch(m).snapshots
        }
        assert [s.price for s in store.warm.latest_market_snapshots()] == [119.0, 119.0]
    finally:
        store.close()
