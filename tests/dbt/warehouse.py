"""A data dir for dbt tests: the two recorded BTCUSDT files plus a synthetic multi-day,
multi-symbol market, replayed through the real pipeline (small enough for CI)."""

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from marketpipe.analytics.build import run_for_mode
from marketpipe.analytics.runner import DbtResult, dbt_executable
from marketpipe.analytics.settings import DbtSettings
from marketpipe.config import load_settings
from marketpipe.embedded.pipeline import CommitHook
from marketpipe.embedded.replay import replay
from marketpipe.model.errors import ConfigError
from marketpipe.simulator import SyntheticMarket, write_trade_frames
from marketpipe.storage.embedded import EmbeddedStore
from tests.conftest import BINANCE_08, BINANCE_09

# Three symbols (not BTC: its recorded ids must stay unique), three days up to about now, so
# the warm store is fresh for `dbt source freshness`. ~0.05 trades/s: ~13k trades.
SYNTHETIC_SYMBOLS = ["ETHUSDT", "SOLUSDT", "XRPUSDT"]
SYNTHETIC_DAYS = 3
SYNTHETIC_RATE = 0.05


def require_dbt() -> DbtSettings:
    settings = DbtSettings()
    try:
        dbt_executable(settings)
    except ConfigError as exc:
        pytest.fail(f"{exc} (make test installs it: scripts/setup.d/40-dbt-venv.sh)")
    return settings


def synthetic_recordings(root: Path, *, end_us: int) -> tuple[Path, Path]:
    """SYNTHETIC_DAYS of trades up to `end_us`, and the same market's next two hours (which
    continue its trade ids) as a second file for incremental runs."""
    start_us = end_us - SYNTHETIC_DAYS * 86_400_000_000
    market = SyntheticMarket(SYNTHETIC_SYMBOLS, SYNTHETIC_RATE, 11, start_us=start_us)
    first, more = root / "synthetic.recv", root / "synthetic-more.recv"
    write_trade_frames(market.advance_columns(end_us), first)
    write_trade_frames(market.advance_columns(end_us + 2 * 3_600_000_000), more)
    return first, more


def replay_into(data_dir: Path, paths: list[Path], on_commit: CommitHook | None = None) -> None:
    settings = load_settings(data_dir=data_dir, log_format="json")
    replay(settings, paths, on_commit=on_commit)


def build_data_dir(root: Path, on_commit: CommitHook | None = None) -> Path:
    """Replay both recorded files and the synthetic market; `on_commit` sees every batch."""
    data_dir = root / "data"
    now_us = time.time_ns() // 1000
    synthetic, _ = synthetic_recordings(root, end_us=now_us)
    replay_into(data_dir, [BINANCE_08, BINANCE_09], on_commit)
    replay_into(data_dir, [synthetic], on_commit)
    return data_dir


def more_synthetic_trades(data_dir: Path) -> Path:
    return data_dir.parent / "synthetic-more.recv"


def dbt(data_dir: Path, command: str, *args: str, settings: DbtSettings | None = None) -> DbtResult:
    """Run `dbt COMMAND` for the duckdb target the way `marketpipe dbt` does."""
    dbt_settings = settings or DbtSettings()
    store = EmbeddedStore(data_dir, read_only=True)
    try:
        return asyncio.run(
            run_for_mode(dbt_settings, command, list(args), data_dir=data_dir, store=store)
        )
    finally:
        store.close()


def copy_data_dir(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
