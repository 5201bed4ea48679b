"""The dashboard's health strip: throughput, lag, connections, completeness, dead letters,
read from this process's Prometheus registry and the stored positions; and the problems of
the moment, each naming its component (for the strip and `/api/v1/system/health`)."""

import threading
import time
from collections.abc import Callable
from typing import Any

from marketpipe.model.errors import MarketpipeError
from marketpipe.model.records import Position
from marketpipe.observability.metrics import REGISTRY
from marketpipe.serving.market import MarketView


def _sum(sample: str, **labels: str) -> float:
    total = 0.0
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def _reason(name: str, component: dict[str, Any]) -> str:
    """One line saying what is wrong with a component that is not ok."""
    if component.get("failing_jobs"):  # the scheduler: dbt build, lifecycle
        jobs = component.get("jobs", {})
        parts = []
        for job in component["failing_jobs"]:
            lines = str(jobs.get(job, {}).get("last_error") or "").strip().splitlines()
            parts.append(f"{job} failed" + (f": {lines[0][:160]}" if lines else ""))
        return "; ".join(parts)
    if "connections_open" in component:  # a venue's connector
        error = str(component.get("last_error") or "").strip()
        return (
            f"venue disconnected, reconnecting ({component['connections_open']} connections open)"
            + (f": {error[:160]}" if error else "")
        )
    if component.get("error"):
        return str(component["error"])[:200]
    return f"{name} is {component.get('status', 'unknown')}"


def _gaps(positions: list[Position]) -> list[dict[str, str]]:
    """Trade ids missing between stored ranges: a gap still open (not, or not yet, filled)."""
    open_gaps = sorted(
        ((p.missing_ids, f"{p.exchange}:{p.symbol}") for p in positions if p.missing_ids),
        reverse=True,
    )
    if not open_gaps:
        return []
    shown = ", ".join(f"{name} {missing:,}" for missing, name in open_gaps[:3])
    more = f" and {len(open_gaps) - 3} more" if len(open_gaps) > 3 else ""
    total = sum(missing for missing, _ in open_gaps)
    return [{"component": "gaps", "status": "open",
             "reason": f"{total:,} trade ids missing ({shown}{more})"}]  # fmt: skip


def problems(health: dict[str, Any], positions: list[Position]) -> list[dict[str, str]]:
    """Every component of `health` that is not ok, and open gaps: component, status, reason."""
    found = [
        {"component": name, "status": str(c.get("status")), "reason": _reason(name, c)}
        for name, c in (health.get("components") or {}).items()
        if isinstance(c, dict) and c.get("status") != "ok"
    ]
    return found + _gaps(positions)


def with_problems(
    health: dict[str, Any], positions: Callable[[], list[Position]]
) -> dict[str, Any]:
    """`health` plus its `problems` list (the status itself is the backend's). A store that
    cannot list positions is already a problem in `health`: gaps are then left out."""
    try:
        known = positions()
    except MarketpipeError:
        known = []
    return {**health, "problems": problems(health, known)}


class PipelineStats:
    def __init__(self, view: MarketView) -> None:
        self.view = view
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None  # (monotonic, trades counted)
        self._rate = 0.0

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        trades = _sum("consumer_messages_consumed_total", kind="trade")
        with self._lock:
            if self._last is not None and now - self._last[0] >= 0.5:
                self._rate = max(0.0, trades - self._last[1]) / (now - self._last[0])
                self._last = (now, trades)
            elif self._last is None:
                self._last = (now, trades)
            rate = self._rate
        positions = self.view.positions()
        health = with_problems(self.view.backend.status(), lambda: positions)
        # Only venues with consecutive ids can prove completeness (model.venues).
        provable = [p for p in positions if p.completeness is not None]
        covered = sum(p.trades_seen for p in provable)
        missing = sum(p.missing_ids for p in provable)
        lags = [
            s.value
            for family in REGISTRY.collect()
            for s in family.samples
            if s.name == "watermark_lag_seconds"
        ]
        dead = self.view.backend.dead_letters() if self.view.backend.dead_letters else 0
        return {
            "messages_per_s": round(rate, 1),
            "trades_total": int(trades),
            "lag_s": round(max(lags), 3) if lags else None,
            "connections": int(_sum("producer_websocket_connections")),
            "completeness": 1.0 if not covered + missing else covered / (covered + missing),
            "symbols": len(positions),
            "dead_letters": int(dead),
            "ws_clients": int(_sum("api_ws_clients")),
            "health": {"status": health.get("status"), "problems": health["problems"]},
        }
