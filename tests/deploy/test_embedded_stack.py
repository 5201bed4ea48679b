"""The embedded stack runs for real under podman: the marketpipe image builds, `demo` comes
up healthy, Prometheus scrapes it, and the API answers from inside and outside the stack."""

from __future__ import annotations

import json
import time

import pytest

from tests.deploy.podman import ComposeStack, http_json, podman

# The first test to ask for the demo stack may build its images (cold: minutes).
pytestmark = pytest.mark.timeout(1200)


def _port(stack: ComposeStack, key: str) -> str:
    return stack.env[key]


def prom_query(stack: ComposeStack, query: str) -> list[dict[str, object]]:
    from urllib.parse import quote

    url = f"http://127.0.0.1:{_port(stack, 'PROMETHEUS_PORT')}/api/v1/query?query={quote(query)}"
    body = http_json(url)
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def test_the_image_runs_as_a_non_root_user_with_a_data_volume_and_a_healthcheck(
    embedded_images: None,
) -> None:
    info = json.loads(podman("image", "inspect", "localhost/marketpipe:ci").stdout)[0]
    config = info["Config"]
    assert config["User"] == "marketpipe"
    assert "/data" in config["Volumes"]
    assert config["Entrypoint"] == ["marketpipe"]
    assert "/api/v1/system/health" in " ".join(info["Healthcheck"]["Test"])
    ls = podman(
        "run",
        "--rm",
        "--tmpfs",
        "/data",
        "--entrypoint",
        "sh",
        "localhost/marketpipe:ci",
        "-c",
        "id -un; /opt/dbt-venv/bin/dbt --version | head -n1; "
        "ls /opt/marketpipe/web/node_modules/lightweight-charts/dist | grep -c standalone; "
        "ls /opt/marketpipe/dbt/dbt_project.yml",
    ).stdout.split("\n")
    assert ls[0] == "marketpipe"
    assert "installed" in ls[1].lower() or "core" in ls[1].lower()
    assert int(ls[2]) >= 1
    assert ls[3] == "/opt/marketpipe/dbt/dbt_project.yml"


def test_demo_is_healthy_and_answers_klines_outside_the_stack(demo_stack: ComposeStack) -> None:
    api = f"http://127.0.0.1:{_port(demo_stack, 'MARKETPIPE_API_PORT')}"
    health = http_json(f"{api}/api/v1/system/health")
    assert health["status"] == "ok"
    rows = http_json(f"{api}/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=5")
    assert rows and all(len(r) == 12 for r in rows)
    assert all(float(r[5]) > 0 for r in rows[:-1]) or float(rows[-1][5]) > 0
    page = http_json(f"{api}/api/v1/system/pipeline")
    assert page  # the dashboard's health strip answers too


def test_the_api_answers_klines_inside_the_stack_by_service_name(demo_stack: ComposeStack) -> None:
    body = demo_stack.exec(
        "prometheus",
        "wget",
        "-q",
        "-O",
        "-",
        "http://marketpipe:8000/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=3",
    )
    rows = json.loads(body)
    assert 1 <= len(rows) <= 3 and all(len(r) == 12 for r in rows)


def test_prometheus_scrapes_marketpipe_and_consumption_rises(demo_stack: ComposeStack) -> None:
    def consumed() -> float:
        result = prom_query(demo_stack, 'sum(consumer_messages_consumed_total{job="marketpipe"})')
        return float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]

    deadline = time.monotonic() + 90
    while not prom_query(demo_stack, 'up{job="marketpipe"} == 1') and time.monotonic() < deadline:
        time.sleep(2)
    assert prom_query(demo_stack, 'up{job="marketpipe"} == 1'), "target not up"
    first = consumed()
    while consumed() <= first and time.monotonic() < deadline + 60:
        time.sleep(3)
    assert consumed() > first > 0
    rules = http_json(f"http://127.0.0.1:{_port(demo_stack, 'PROMETHEUS_PORT')}/api/v1/rules")
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"MarketpipeDown", "SymbolNoTrades", "ApiErrorRateHigh"} <= names
