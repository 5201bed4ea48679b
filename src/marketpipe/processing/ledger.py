"""Trade ids seen per (exchange, symbol), as disjoint closed ranges.

One structure answers three questions: is this id new (dedup), where are the holes (gaps),
and how complete is the stream (covered ids over the span). Binance ids are consecutive, so
a live stream stays a single range and the state is a few integers however long it runs.
"""

import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]


class IdLedger:
    """Disjoint, sorted, non-adjacent closed ranges `[lo, hi]` of ids seen."""

    __slots__ = ("_hi", "_lo", "gaps_found")

    def __init__(self, ranges: list[tuple[int, int]] | None = None, gaps_found: int = 0) -> None:
        pairs = sorted(ranges or [])
        self._lo: Ids = np.array([lo for lo, _ in pairs], dtype=np.int64)
        self._hi: Ids = np.array([hi for _, hi in pairs], dtype=np.int64)
        self.gaps_found = gaps_found

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return [(int(lo), int(hi)) for lo, hi in zip(self._lo, self._hi, strict=True)]

    @property
    def holes(self) -> int:
        return max(0, len(self._lo) - 1)

    @property
    def gaps_filled(self) -> int:
        return max(0, self.gaps_found - self.holes)

    @property
    def max_id(self) -> int | None:
        return int(self._hi[-1]) if len(self._hi) else None

    def unseen(self, ids: Ids) -> npt.NDArray[np.bool_]:
        """Mask of `ids` not yet in the ledger."""
        if not len(self._lo):
            return np.ones(len(ids), dtype=np.bool_)
        slot = np.searchsorted(self._lo, ids, side="right") - 1
        inside = (slot >= 0) & (ids <= self._hi[np.maximum(slot, 0)])
        return ~inside

    def add(self, ids: Ids) -> None:
        """Record `ids` (unique, any order) as seen; counts a gap for each jump past the top."""
        if not len(ids):
            return
        ids = np.sort(ids)
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        new_lo = ids[np.concatenate(([0], breaks))]
        new_hi = ids[np.concatenate((breaks - 1, [len(ids) - 1]))]
        top = self.max_id
        if top is not None:
            # A run starting beyond the current top leaves a hole below it: a gap found.
            # Holes inside the new runs themselves count too.
            self.gaps_found += int(np.count_nonzero(new_lo > top + 1))
        else:
            self.gaps_found += len(new_lo) - 1
        self._merge(new_lo, new_hi)

    def _merge(self, new_lo: Ids, new_hi: Ids) -> None:
        lo = np.concatenate((self._lo, new_lo))
        hi = np.concatenate((self._hi, new_hi))
        order = np.argsort(lo, kind="stable")
        lo, hi = lo[order], hi[order]
        # Running max of hi tells whether each range touches (or is adjacent to) the ones before.
        reach = np.maximum.accumulate(hi)
        starts = np.concatenate(([True], lo[1:] > reach[:-1] + 1))
        self._lo = lo[starts]
        self._hi = np.maximum.reduceat(hi, np.flatnonzero(starts))
