"""A per-IP token bucket, for venues that limit REST requests per second (Coinbase, Kraken).

Binance counts request weight per minute instead (`rest.WeightLimiter`).
"""

from __future__ import annotations

import time


class TokenBucket:
    """`rate_per_s` requests a second per IP, with bursts of up to `burst`."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._state: dict[str, tuple[float, float]] = {}  # ip -> (tokens, at)

    def take(self, ip: str) -> bool:
        """Spend one token of `ip`; False when it has none left (the request is refused)."""
        now = time.monotonic()
        tokens, at = self._state.get(ip, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        if tokens < 1.0:
            self._state[ip] = (tokens, now)
            return False
        self._state[ip] = (tokens - 1.0, now)
        return True

    def wait_s(self, ip: str) -> float:
        """How long until `ip` has a token again."""
        tokens, _ = self._state.get(ip, (self.burst, 0.0))
        return max(0.0, (1.0 - tokens) / self.rate_per_s)
