"""`marketpipe lifecycle run` on a replayed data dir prints what it archived and compacted."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketpipe.cli import app
from marketpipe.config import Settings
from marketpipe.embedded.replay import replay
from tests.conftest import BINANCE_08, BINANCE_09

pytestmark = pytest.mark.integration


def test_lifecycle_run_reports_archived_days(settings: Settings) -> None:
    replay(settings, [BINANCE_08, BINANCE_09])
    runner = CliRunner()
    args = ["lifecycle", "run", "--data-dir", str(settings.data_dir), "--now", "2024-08-11T00:00Z"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2024-08-08, 2024-08-09" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "archived days" in again.output
    assert "2024-08-08" not in again.output  # archived once
    candle_dirs = list((settings.data_dir / "lake" / "candles").rglob("*.parquet"))
    assert len(candle_dirs) == 2 * 6  # 2 days x 6 intervals, one file each


def test_lifecycle_run_without_data_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["lifecycle", "run", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no data in" in result.output
