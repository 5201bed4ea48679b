"""One asset's fair value, shared by every venue that lists it, and each venue's basis.

The fair value is a log-price path on a fixed grid (100 ms), generated lazily in chunks from
one seeded generator per asset, so it is the same path whichever venue asks first and how
far. It has the single-venue market's character: a slow log-normal volatility regime,
Student-t steps, and spikes of 2.5-5 % within a minute that often half-revert.

A venue's price is the fair value plus its basis: a mean-reverting (Ornstein-Uhlenbeck)
offset of about a basis point, clipped so venues never drift apart by more than a few bps.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

STEP_US = 100_000  # the grid: 10 points a second
_CHUNK = 6000  # grid points generated at once (10 minutes)
_VOL_PHI = 0.9995  # regime persistence per grid step
_VOL_SPREAD = 0.6
_SPIKES_PER_HOUR = 4.0


class LazyPath:
    """A function of time on the `STEP_US` grid from `start_us`, extended on demand."""

    def __init__(self, start_us: int, first: float) -> None:
        self.start_us = start_us
        self._values: F64 = np.array([first])

    def _extend(self) -> F64:
        """The next chunk of values after the last one."""
        raise NotImplementedError

    def at(self, t_us: npt.ArrayLike) -> F64:
        """Values at `t_us` (linear between grid points; times before the start clamp)."""
        t = np.asarray(t_us, dtype=np.float64)
        pos = np.maximum(t - self.start_us, 0.0) / STEP_US
        need = math.ceil(float(pos.max())) + 2 if pos.size else 0
        while self._values.shape[0] < need:
            self._values = np.concatenate((self._values, self._extend()))
        index = pos.astype(np.int64)
        frac = pos - index
        values = self._values
        return values[index] * (1.0 - frac) + values[index + 1] * frac

    @property
    def last(self) -> float:
        return float(self._values[-1])


class FairValue(LazyPath):
    """The log fair value of one asset (in USD) over time."""

    def __init__(
        self, start_price: float, annual_vol: float, seed: np.random.SeedSequence, start_us: int
    ) -> None:
        super().__init__(start_us, math.log(start_price))
        self._rng = np.random.default_rng(seed)
        self._vol_step = annual_vol / math.sqrt(365.25 * 86400) * math.sqrt(STEP_US / 1e6)
        self._z = 0.0
        self._spikes: list[tuple[int, int, float]] = []  # (start index, length, log size)
        self._n = 1  # grid points generated so far

    def _extend(self) -> F64:
        rng, n, first = self._rng, _CHUNK, self._n
        shocks = rng.standard_normal(n) * math.sqrt(1 - _VOL_PHI**2)
        regime = np.empty(n)
        z = self._z
        for i in range(n):  # AR(1); a loop of 6000 per 10 simulated minutes is cheap
            z = _VOL_PHI * z + shocks[i]
            regime[i] = z
        self._z = z
        sigma = self._vol_step * np.exp(_VOL_SPREAD * regime - _VOL_SPREAD**2 / 2)
        steps = sigma * rng.standard_t(4, size=n) / math.sqrt(2.0)
        hours = n * STEP_US / 3.6e9
        for _ in range(int(rng.poisson(_SPIKES_PER_HOUR * hours))):
            start = first + int(rng.integers(0, n))
            length = int(rng.uniform(50, 400))  # 5-40 s
            size = float(rng.choice((-1.0, 1.0)) * rng.uniform(0.025, 0.05))
            self._spikes.append((start, length, size))
            if rng.random() < 0.6:  # partial reversion a few minutes later
                self._spikes.append((start + int(rng.uniform(600, 6000)), 1200, -0.5 * size))
        for start, length, size in self._spikes:
            lo, hi = max(start, first), min(start + length, first + n)
            if lo < hi:
                steps[lo - first : hi - first] += size / length
        self._spikes = [s for s in self._spikes if s[0] + s[1] > first + n]
        self._n += n
        return self.last + np.cumsum(steps)


class VenueBasis(LazyPath):
    """A venue's log offset from the fair value: OU noise, clipped to `±max_bps`."""

    def __init__(
        self,
        seed: np.random.SeedSequence,
        start_us: int,
        sigma_bps: float = 1.0,
        half_life_s: float = 20.0,
        max_bps: float = 3.0,
    ) -> None:
        self._rng = np.random.default_rng(seed)
        self._phi = 0.5 ** (STEP_US / 1e6 / half_life_s)
        self._sigma = sigma_bps * 1e-4
        self._max = max_bps * 1e-4
        first = float(np.clip(self._rng.normal(0.0, self._sigma), -self._max, self._max))
        super().__init__(start_us, first)

    def _extend(self) -> F64:
        noise = self._rng.standard_normal(_CHUNK) * self._sigma * math.sqrt(1 - self._phi**2)
        out = np.empty(_CHUNK)
        x = self.last
        for i in range(_CHUNK):
            x = self._phi * x + noise[i]
            out[i] = x
        return np.clip(out, -self._max, self._max)
