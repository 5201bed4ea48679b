"""Grafana dashboards: generated from code, valid against the SDK's types, and every
Prometheus panel returns data from the real Prometheus scraping the running demo stack.
(The SQL panels run against the cluster stack's PostgreSQL: test_cluster_stack.py.)"""

from __future__ import annotations

import json
import math
import time
from typing import Any
from urllib.parse import quote

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from deploy.grafana import generate
from tests.deploy.grafana_queries import dashboards, targets
from tests.deploy.podman import ComposeStack, http_json

# The first test to ask for the demo stack may build its images (cold: minutes).
pytestmark = pytest.mark.timeout(1200)

PROM_TARGETS = list(targets("prometheus"))
PROM_IDS = [f"{board}:{title}:{target['refId']}" for board, title, target in PROM_TARGETS]
DATASOURCE_UIDS = {"marketpipe-prometheus", "marketpipe-postgres"}


def test_the_four_dashboards_are_committed_as_the_generator_writes_them() -> None:
    boards = dashboards()
    assert sorted(boards) == sorted(generate.DASHBOARDS)
    titles = {b["title"] for b in boards.values()}
    assert titles == {
        "marketpipe / Market Overview",
        "marketpipe / Symbol Deep Dive",
        "marketpipe / Trading Analytics",
        "marketpipe / System Health",
    }
    for name, board in boards.items():
        assert board == generate.render(name), f"{name}.json is stale: run generate.py"


@pytest.mark.parametrize("name", sorted(generate.DASHBOARDS))
def test_each_dashboard_parses_back_through_the_sdk_types(name: str) -> None:
    data = generate.render(name)
    model = Dashboard.from_json(data)
    again: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    # The one extension: the SQL target of the alert annotation (no SDK type has rawSql).
    for board in (data, again):
        for annotation in board.get("annotations", {}).get("list", []):
            annotation.pop("target", None)
    assert again == data
    ids = [p["id"] for p in data["panels"]] if all("id" in p for p in data["panels"]) else []
    assert len(ids) == len(set(ids))
    assert data["panels"], name


def test_every_panel_has_a_query_and_the_uids_of_the_provisioned_datasources() -> None:
    for name, board in dashboards().items():
        for panel in board["panels"]:
            assert panel.get("targets"), (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in {
                    "marketpipe-prometheus",
                    "marketpipe-postgres",
                }


@pytest.mark.parametrize(
    ("board", "title", "target"),
    PROM_TARGETS,
    ids=[f"{b}:{t}:{g['refId']}" for b, t, g in PROM_TARGETS],
)
def test_every_promql_panel_returns_data_from_the_running_stack(
    demo_stack: ComposeStack, board: str, title: str, target: dict[str, Any]
) -> None:
    prom = f"http://127.0.0.1:{demo_stack.env['PROMETHEUS_PORT']}"
    expr = target["expr"]
    deadline = time.monotonic() + 120  # rate()s need two scrapes
    values: list[float] = []
    while time.monotonic() < deadline:
        body = http_json(f"{prom}/api/v1/query?query={quote(expr)}")
        assert body["status"] == "success", body
        values = [float(r["value"][1]) for r in body["data"]["result"]]
        if any(math.isfinite(v) for v in values):
            break
        time.sleep(5)
    assert any(math.isfinite(v) for v in values), f"{board} / {title}: {expr} -> {values}"
