"""A divergence scenario: one venue's price of one asset moves away from the others.

Each episode shifts the venue's price by `bps` basis points (up if positive, down if
negative) from `start_s` after the market's start for `duration_s`, then it snaps back. It is
what the `venue_divergence` alert must catch once per episode, and never without one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Divergence:
    venue: str
    asset: str  # as `listings.asset_of` names it: `BTC`
    bps: float
    start_s: float
    duration_s: float

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.start_s < 0:
            raise ValueError("a divergence needs start_s >= 0 and duration_s > 0")
        if self.bps <= -10_000:
            raise ValueError("a divergence cannot move a price below zero")

    def window_us(self, market_start_us: int) -> tuple[int, int]:
        """`[start, end)` of the episode in wall-clock µs."""
        start = market_start_us + round(self.start_s * 1e6)
        return start, start + round(self.duration_s * 1e6)

    @classmethod
    def parse(cls, text: str) -> Divergence:
        """`"kraken:BTC:80:30:20"`: venue, asset, bps, start s, duration s (a CLI spelling)."""
        parts = [p.strip() for p in text.split(":")]
        if len(parts) != 5:
            raise ValueError(
                f"divergence {text!r}: expected venue:asset:bps:start_s:duration_s, "
                "e.g. kraken:BTC:80:30:20"
            )
        venue, asset, bps, start, duration = parts
        try:
            return cls(venue.lower(), asset.upper(), float(bps), float(start), float(duration))
        except ValueError as exc:
            raise ValueError(f"divergence {text!r}: {exc}") from None

    @property
    def log_offset(self) -> float:
        return math.log1p(self.bps / 1e4)


def log_offsets(
    episodes: Iterable[Divergence],
    venue: str,
    asset: str,
    market_start_us: int,
    t_us: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """The summed log offsets of `venue`'s episodes of `asset` at times `t_us`."""
    out = np.zeros(t_us.shape[0])
    for episode in episodes:
        if episode.venue == venue and episode.asset == asset:
            start, end = episode.window_us(market_start_us)
            out += np.where((t_us >= start) & (t_us < end), episode.log_offset, 0.0)
    return out
