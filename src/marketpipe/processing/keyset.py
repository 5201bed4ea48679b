"""Trade keys seen per (exchange, symbol) for a venue without consecutive ids.

`IdLedger`'s ranges suit consecutive ids: a live stream stays one range. Keys derived from
time (`model.venues`) are sparse, so ranges would grow by one per trade. A `KeySet` instead
keeps the newest `capacity` keys in a sorted array and a *floor*: every key at or below it
counts as seen. The floor is the largest key evicted (or the last key stored before a
restart), so a replay, a restart or a duplicated frame never stores a trade twice; the price
is that a trade arriving with a key below the floor (older than the newest `capacity` keys, or
after a restart older than the newest stored trade) is taken for a duplicate.

It answers the questions `IdLedger` does, with no ranges, holes or gaps: completeness of such
a venue is not provable (`Position.completeness` is None).
"""

import numpy as np
import numpy.typing as npt

Ids = npt.NDArray[np.int64]
DEFAULT_CAPACITY = 1 << 18  # 262,144 keys: 2 MB per symbol, hours of a busy stock


class KeySet:
    __slots__ = ("_keys", "capacity", "floor")

    gaps_found = 0
    gaps_filled = 0
    holes = 0

    def __init__(self, floor: int = -1, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.floor = floor
        self.capacity = capacity
        self._keys: Ids = np.empty(0, dtype=np.int64)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return []  # keys are not a sequence: there is nothing to cover

    @property
    def max_id(self) -> int | None:
        if len(self._keys):
            return int(self._keys[-1])
        return self.floor if self.floor >= 0 else None

    def __len__(self) -> int:
        return len(self._keys)

    def unseen(self, ids: Ids) -> npt.NDArray[np.bool_]:
        """Mask of `ids` neither at or below the floor nor kept."""
        above = ids > self.floor
        if not len(self._keys):
            return above
        slot = np.minimum(np.searchsorted(self._keys, ids), len(self._keys) - 1)
        kept: npt.NDArray[np.bool_] = self._keys[slot] == ids
        return above & ~kept

    def add(self, ids: Ids) -> None:
        """Record `ids` (unseen, unique) as seen; the oldest beyond `capacity` raise the floor."""
        if not len(ids):
            return
        keys = np.union1d(self._keys, ids)  # sorted, unique
        excess = len(keys) - self.capacity
        if excess > 0:
            self.floor = max(self.floor, int(keys[excess - 1]))
            keys = keys[excess:]
        self._keys = keys
