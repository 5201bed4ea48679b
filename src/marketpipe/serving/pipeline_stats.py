"""The dashboard's health strip: throughput, lag, connections, completeness, dead letters,
read from this process's Prometheus registry and the stored positions."""

import threading
import time
from typing import Any

from marketpipe.observability.metrics import REGISTRY
from marketpipe.serving.market import MarketView


def _sum(sample: str, **labels: str) -> float:
    total = 0.0
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


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
        covered = sum(p.trades_seen for p in positions)
        missing = sum(p.missing_ids for p in positions)
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
        }
