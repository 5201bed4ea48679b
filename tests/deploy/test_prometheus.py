"""Prometheus: both scrape configs and the rules pass promtool, the rules' unit tests fire
each alert on a failing series and stay silent on a healthy one, and end to end a symbol
that stops trading makes its staleness alert fire in a Prometheus scraping a live stack."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import TEST_SECRETS
from tests.deploy.podman import (
    COMPOSE_DIR,
    REPO,
    compose_stack,
    free_port,
    http_get,
    http_json,
    wait_for,
)

# The first test to ask for the demo stack may build its images (cold: minutes).
pytestmark = pytest.mark.timeout(1200)

PROM = REPO / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["embedded.yml", "cluster.yml"])
def test_promtool_check_config(name: str, tmp_path: Path) -> None:
    # The containers mount the rules at /etc/prometheus/rules; point at the repo's copy.
    config = yaml.safe_load((PROM / name).read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(PROM / "rules" / "*.yml")]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    proc = promtool("check", "config", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 10 rules found" in proc.stdout


def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", *map(str, sorted((PROM / "rules").glob("*.yml"))))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    proc = promtool("test", "rules", str(PROM / "tests" / "marketpipe_test.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_unit_test_and_a_runbook() -> None:
    rules = yaml.safe_load((PROM / "rules" / "marketpipe.yml").read_text())
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    tests = yaml.safe_load((PROM / "tests" / "marketpipe_test.yml").read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
    assert set(alerts) == tested
    runbook = (REPO / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"\n### {alert}\n" in runbook, f"{alert} has no runbook section"
    for case in tests:  # each case proves silence (an empty expectation) and firing
        assert any(t["exp_alerts"] == [] for t in case["alert_rule_test"]) or case[
            "name"
        ].startswith("a growing lag"), case["name"]


def test_a_symbol_that_stops_trading_fires_its_staleness_alert(
    embedded_images: None, tmp_path: Path
) -> None:
    control = tmp_path / "control"
    control.mkdir()
    control.chmod(0o755)
    env = {
        **TEST_SECRETS,
        "MARKETPIPE_API_PORT": str(free_port()),
        "PROMETHEUS_PORT": str(free_port()),
        "MARKETPIPE_TEST_DIR": str(Path(__file__).parent),
        "MARKETPIPE_TEST_CONTROL": str(control),
    }
    files = [COMPOSE_DIR / "embedded.yaml", Path(__file__).parent / "embedded.e2e.yaml"]
    project = f"mpalert{os.getpid()}"
    with compose_stack(project, files, env, ["exchange", "marketpipe", "prometheus"]) as stack:
        stack.wait_healthy("prometheus")
        api = f"http://127.0.0.1:{env['MARKETPIPE_API_PORT']}"
        prom = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}"

        def eth_candles() -> bool:
            status, body = http_get(f"{api}/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=1")
            return status == 200 and body.startswith(b"[[")

        wait_for(eth_candles, 180, "ETHUSDT candles from the simulated exchange")
        _, body = http_get(f"{api}/metrics")
        assert b"last_trade_timestamp_seconds{" in body, (
            "marketpipe exposes no last_trade_timestamp_seconds{exchange,symbol} gauge "
            "(the metric SymbolNoTrades needs)\n" + stack.logs("marketpipe")
        )
        (control / "halt").write_text("ETHUSDT\n")
        halted_at = time.monotonic()

        def firing() -> list[dict[str, object]]:
            alerts = http_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
            return [
                a
                for a in alerts
                if a["labels"]["alertname"] == "SymbolNoTrades" and a["state"] == "firing"
            ]

        while not firing() and time.monotonic() - halted_at < 240:
            time.sleep(5)
        fired = firing()
        assert [a["labels"]["symbol"] for a in fired] == ["ETH-USDT"], fired
        assert fired[0]["labels"]["exchange"] == "binance"
        # The symbol that still trades never alerted.
        alerts = http_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
        assert not [a for a in alerts if a["labels"].get("symbol") == "BTC-USDT"]
