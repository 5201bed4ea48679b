"""`marketpipe check` and `backfill`: commands the Airflow DAGs run."""

import asyncio
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from harness.reference import reference_candles
from marketpipe.cli import app
from marketpipe.config import Settings
from marketpipe.embedded.backfill import backfill_range
from marketpipe.embedded.demo import point_at
from marketpipe.simulator import SimulatedExchange, SyntheticMarket
from tests.conftest import BINANCE_08, BINANCE_09
from tests.dbt.warehouse import replay_into

runner = CliRunner()


@pytest.fixture(scope="module")
def recorded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("ops") / "data"
    replay_into(data_dir, [BINANCE_08, BINANCE_09])
    return data_dir


@pytest.mark.integration
def test_check_freshness_fails_naming_the_stale_symbol(recorded_dir: Path) -> None:
    result = runner.invoke(app, ["check", "freshness", "--data-dir", str(recorded_dir)])
    assert result.exit_code == 1
    assert "ALERT binance BTC-USDT is stale: last trade 2024-08-09T00:05:05.800Z" in result.output


@pytest.mark.integration
def test_check_freshness_passes_within_the_threshold(recorded_dir: Path) -> None:
    age = time.time() - 1_723_161_905.8  # the recording's last trade, 2024-08-09T00:05:05.800Z
    result = runner.invoke(
        app,
        ["check", "freshness", "--data-dir", str(recorded_dir), "--max-staleness-s",
         str(age + 3600)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "freshness: 1 symbols ok" in result.output


@pytest.mark.integration
def test_check_completeness_passes_on_gap_free_ids_and_fails_above_them(
    recorded_dir: Path,
) -> None:
    ok = runner.invoke(app, ["check", "completeness", "--data-dir", str(recorded_dir)])
    assert ok.exit_code == 0, ok.output
    # The recording is gap-free (tests/data/README.md), so only an impossible bar fails.
    failing = runner.invoke(
        app, ["check", "completeness", "--data-dir", str(recorded_dir), "--min-pct", "100.1"]
    )
    assert failing.exit_code == 1
    assert "BTC-USDT is 100.0000 % complete" in failing.output


@pytest.mark.integration
async def test_backfill_stores_the_range_and_its_candles_once(settings: Settings) -> None:
    symbols = ["BTC-USDT", "ETH-USDT"]
    async with SimulatedExchange(SyntheticMarket(symbols, 400, seed=9)) as exchange:
        await asyncio.sleep(2.5)  # let the market build some REST history
        truth = [t for t in exchange.ground_truth() if t.symbol == "ETH-USDT"]
        start, end = truth[0].ts_event, truth[-1].ts_event  # end exclusive: last one left out
        pointed = point_at(settings, exchange)
        first = await backfill_range(pointed, "ETH-USDT", start, end)
        again = await backfill_range(pointed, "ETH-USDT", start, end)
    expected = [t for t in truth if start <= t.ts_event < end]
    assert first.fetched == first.stored == len(expected) > 100
    assert (again.fetched, again.stored, again.duplicates) == (len(expected), 0, len(expected))
    con = duckdb.connect(str(settings.data_dir / "warm.duckdb"), read_only=True)
    ids = [r[0] for r in con.execute("SELECT trade_id FROM trades_recent ORDER BY 1").fetchall()]
    assert ids == sorted(t.trade_id for t in expected)
    stored = con.execute(
        "SELECT epoch_ms(open_time), open, high, low, close, trade_count FROM candles "
        "WHERE interval = '1m' ORDER BY open_time"
    ).fetchall()
    rows = [
        ("ETHUSDT", t.trade_id, t.price, t.qty, t.side == "sell", t.ts_event // 1000)
        for t in expected
    ]
    reference = [(r[1], r[2], r[3], r[4], r[5], r[8]) for r in reference_candles(rows)]
    assert stored == reference
