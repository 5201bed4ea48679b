"""The queries of the generated Grafana dashboards, as Grafana would send them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
# The values a user picks in the template variables (the recorded data is BTC-USDT).
VARIABLE_VALUES = {"exchange": "binance", "symbol": "BTC-USDT", "interval": "1m"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def targets(kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(dashboard, panel title, target) for every target of datasource type `kind`."""
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel.get("datasource") or {}
                if ds.get("type") == kind:
                    yield name, panel["title"], target
        if kind == "grafana-postgresql-datasource":
            for annotation in board.get("annotations", {}).get("list", []):
                if annotation.get("datasource", {}).get("type") == kind:
                    yield name, annotation["name"], annotation["target"]
            for variable in board.get("templating", {}).get("list", []):
                if variable.get("datasource", {}).get("type") == kind:
                    yield name, f"variable {variable['name']}", {"rawSql": variable["query"]}


def expand_sql(sql: str, start: str, end: str, values: dict[str, str]) -> str:
    """Grafana's macros and variables: $__timeFilter(col) and $name."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", lambda m: f"{m[1]} BETWEEN '{start}' AND '{end}'", sql)
    for name, value in values.items():
        sql = sql.replace(f"${name}", value)
    assert "$" not in sql, f"unexpanded macro in {sql}"
    return sql
