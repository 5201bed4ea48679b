"""Fault injection: what can go wrong between Binance and us, on purpose and seeded.

A FaultPlan says what to inject (all off by default); a FaultInjector draws the per-frame
and per-request decisions from one seeded RNG, so a failing test reruns identically.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace

# Short names for the CLI (`--faults disconnect=3,dup=0.01`), and the full field names.
_ALIASES = {
    "disconnect": "disconnect_every_s",
    "stall": "stall_every_s",
    "stall_for": "stall_s",
    "drop": "drop_prob",
    "dup": "duplicate_prob",
    "duplicate": "duplicate_prob",
    "reorder": "reorder_prob",
    "malformed": "malformed_prob",
    "shutdown": "server_shutdown_every_s",
    "shutdown_grace": "server_shutdown_grace_s",
    "429": "rest_429_prob",
    "418": "rest_418_prob",
    "retry_after": "retry_after_s",
    "rest_delay": "rest_delay_s",
}


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which faults the simulator injects; every field off (0 / None) by default."""

    disconnect_every_s: float | None = None  # abruptly close every client connection
    stall_every_s: float | None = None  # go silent (no data, no pings, no pongs) ...
    stall_s: float = 5.0  # ... for this long, without closing
    drop_prob: float = 0.0  # a trade frame is never sent: a trade-id gap
    duplicate_prob: float = 0.0  # a trade frame is sent twice
    reorder_prob: float = 0.0  # a trade frame swaps places with the next one
    malformed_prob: float = 0.0  # an extra garbage or truncated frame is sent
    server_shutdown_every_s: float | None = None  # send `serverShutdown`, then close ...
    server_shutdown_grace_s: float = 3.0  # ... this long afterwards
    rest_429_prob: float = 0.0
    rest_418_prob: float = 0.0
    retry_after_s: int = 2
    rest_delay_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {f.name} must be within [0, 1], got {value}")
            if isinstance(value, int | float) and value < 0:
                raise ValueError(f"fault {f.name} must not be negative, got {value}")

    @property
    def any(self) -> bool:
        return self != FaultPlan(seed=self.seed)

    @classmethod
    def chaos(cls, seed: int = 0) -> FaultPlan:
        """A mix of every fault at rates a resilient connector must ride out."""
        return cls(
            disconnect_every_s=20.0,
            stall_every_s=45.0,
            stall_s=4.0,
            drop_prob=0.002,
            duplicate_prob=0.005,
            reorder_prob=0.005,
            malformed_prob=0.001,
            server_shutdown_every_s=60.0,
            rest_429_prob=0.05,
            rest_418_prob=0.01,
            retry_after_s=1,
            rest_delay_s=0.05,
            seed=seed,
        )

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """`"chaos"`, `"none"` or `"disconnect=3,dup=0.01,429=0.1,seed=4"` (chaos may start
        the list and be overridden: `"chaos,drop=0"`)."""
        plan = cls()
        names = {f.name: f for f in fields(cls)}
        for part in (p.strip() for p in text.split(",")):
            if not part or part == "none":
                continue
            if part == "chaos":
                plan = cls.chaos(plan.seed)
                continue
            key, sep, raw = part.partition("=")
            name = _ALIASES.get(key.strip(), key.strip())
            if not sep or name not in names:
                known = ", ".join(sorted({*_ALIASES, *names}))
                raise ValueError(f"unknown fault {part!r}; expected name=value with one of {known}")
            value: float | int | None
            if raw.strip().lower() in ("", "off", "none"):
                value = None if names[name].default is None else 0
            elif name in ("seed", "retry_after_s"):
                value = int(raw)
            else:
                value = float(raw)
            plan = replace(plan, **{name: value})  # type: ignore[arg-type]
        return plan


class FaultInjector:
    """Seeded draws for one exchange run."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self.counts: dict[str, int] = {}

    def _hit(self, prob: float, name: str) -> bool:
        if prob > 0.0 and self._rng.random() < prob:
            self.counts[name] = self.counts.get(name, 0) + 1
            return True
        return False

    def drop(self) -> bool:
        return self._hit(self.plan.drop_prob, "drop")

    def duplicate(self) -> bool:
        return self._hit(self.plan.duplicate_prob, "duplicate")

    def reorder(self) -> bool:
        return self._hit(self.plan.reorder_prob, "reorder")

    def malformed(self, frame: bytes) -> bytes | None:
        """Garbage to send after `frame`, or None."""
        if not self._hit(self.plan.malformed_prob, "malformed"):
            return None
        if self._rng.random() < 0.5:
            return frame[: max(1, len(frame) // 2)]  # truncated JSON
        return b'{"e":"trade","E":oops,"s":}'  # not JSON at all

    def rest_status(self) -> int | None:
        """429 or 418 to answer a REST request with, or None."""
        if self._hit(self.plan.rest_418_prob, "rest_418"):
            return 418
        if self._hit(self.plan.rest_429_prob, "rest_429"):
            return 429
        return None

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
