"""SIGTERM (`docker stop`, systemd) stops `demo`, `run` and `serve` as cleanly as Ctrl-C:
the last records are committed and exported, the `stopped` line is printed, the lock file is
removed, and the exit code is 0 (it was 143, with the lock file left behind)."""

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpipe.config import Settings
from marketpipe.embedded.pipeline import Pipeline
from marketpipe.embedded.stores import open_store
from marketpipe.simulator import SyntheticMarket
from tests.chaos.live import Exchange, live_env, start_exchange
from tests.stopping import Command, free_port, health, start

DEMO_SYMBOLS = "BTCUSDT,ETHUSDT"


@pytest.fixture
def exchange() -> Iterator[Exchange]:
    yield from start_exchange("seed=1")  # no faults: a plain venue


def _stored_trades(data: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "marketpipe.cli", "query", "trades", "--data-dir", str(data),
         "--format", "json"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def _engine_trades(data: Path) -> int:
    """Trades the running pipeline reports committed (0 until its API answers)."""
    lock = data / "marketpipe.lock.json"
    if not lock.is_file():
        return 0
    body = health(json.loads(lock.read_text())["port"])
    engine = (body or {}).get("components", {}).get("engine", {})  # type: ignore[attr-defined]
    return int(engine.get("trades", 0))


def _stop_and_check(command: Command, data: Path, sig: signal.Signals) -> None:
    command.wait_until(lambda: _engine_trades(data) > 0, "the first commit")
    committed = _engine_trades(data)
    assert command.stop(sig) == 0, command.stderr[-3000:]
    lines = [line for line in command.stderr.splitlines() if line.strip()]
    assert lines[-1] == "stopped", lines[-5:]
    assert not (data / "marketpipe.lock.json").exists()
    trades = _stored_trades(data)
    assert len(trades) >= committed > 0  # nothing the run reported committed is lost
    assert len({(t["symbol"], t["trade_id"]) for t in trades}) == len(trades)
    # The clean stop ends with the lake export, as a duration's end does.
    assert list((data / "lake" / "trades").rglob("*.parquet"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_demo_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    data = tmp_path / "data"
    demo = start("demo", "--data-dir", str(data), "--port", "0", "--symbols", DEMO_SYMBOLS,
                 cwd=tmp_path)  # fmt: skip
    _stop_and_check(demo, data, sig)


def test_sigterm_stops_a_live_run_cleanly(tmp_path: Path, exchange: Exchange) -> None:
    data = tmp_path / "data"
    run = start("run", "--data-dir", str(data), "--port", "0", "--symbols", DEMO_SYMBOLS,
                cwd=tmp_path, env=live_env(exchange))  # fmt: skip
    _stop_and_check(run, data, signal.SIGTERM)


def test_sigterm_during_start_up_still_removes_the_lock_file(tmp_path: Path) -> None:
    """Before the demo is up (no clean stop to ask for yet) the start-up is cancelled."""
    data = tmp_path / "data"
    demo = start("demo", "--data-dir", str(data), "--port", "0", "--symbols", DEMO_SYMBOLS,
                 cwd=tmp_path)  # fmt: skip
    # Each simulated venue logs "simulated <venue> on <url>" once it listens.
    demo.wait_until(lambda: "simulated binance on" in demo.stderr, "the simulator")
    assert demo.stop(signal.SIGTERM) == 0, demo.stderr[-3000:]
    assert demo.stderr.splitlines()[-1] == "stopped"
    assert not (data / "marketpipe.lock.json").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_serve_with_exit_0(
    tmp_path: Path, settings: Settings, sig: signal.Signals
) -> None:
    store = open_store(settings)
    try:
        Pipeline(settings, store).ingest(
            SyntheticMarket(["BTC-USDT"], 50, 3).generate(500).to_arrow()
        )
    finally:
        store.close()
    port = free_port()
    serve = start("serve", "--data-dir", str(settings.data_dir), "--port", str(port),
                  cwd=tmp_path)  # fmt: skip
    serve.wait_until(lambda: (health(port) or {}).get("status") == "ok", "the API")
    assert serve.stop(sig) == 0, serve.stderr[-3000:]
    assert serve.stderr.splitlines()[-1] == "stopped"
