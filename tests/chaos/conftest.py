"""Chaos fixtures: a synthetic recording, the pipeline as a subprocess, kill -9 helpers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marketpipe.model.symbols import DEFAULT_SYMBOLS
from marketpipe.simulator import SyntheticMarket, write_trade_frames

START_US = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC
# Small batches and lake flushes, so a kill lands between and inside many commits and exports.
CHAOS_ENV = {
    "MARKETPIPE_ENGINE__BATCH_MAX_TRADES": "1000",
    "MARKETPIPE_STORAGE__LAKE_FLUSH_TRADES": "4000",
    "MARKETPIPE_LOG_FORMAT": "json",
    "MARKETPIPE_LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40,000 trades of 20 symbols over ~11 event minutes, as recorded Binance frames.

    At 60 trades/s windows finalize all along the replay, and the synthetic market's whales
    and spikes fire alerts, so kills interrupt every kind of write.
    """
    path = tmp_path_factory.mktemp("chaos") / "synthetic.recv"
    market = SyntheticMarket(list(DEFAULT_SYMBOLS), 60.0, seed=5, start_us=START_US)
    write_trade_frames(market.generate(40_000), path, seed=5, gzipped=False)
    return path


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`marketpipe <args>` in a child process of its own (its own process group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "marketpipe.cli", *args],
        cwd=cwd,
        env=os.environ | CHAOS_ENV | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 180) -> tuple[int, str]:
    """Wait for `proc`; returns (exit code, stderr text)."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"process did not finish in {timeout} s:\n{err.decode(errors='replace')}")
    return proc.returncode, err.decode(errors="replace")


def kill9_after(proc: subprocess.Popen[bytes], delay_s: float) -> bool:
    """SIGKILL `proc` after `delay_s`; True if it was still running (a kill mid-work)."""
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            proc.communicate()
            return False
        time.sleep(0.02)
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return alive
