"""US equity market hours: 09:30 to 16:00 America/New_York, Monday to Friday.

Exchange holidays and half days are not modelled: a simulated weekday is a trading day.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import numpy as np

from marketpipe.simulator.columns import I64

NEW_YORK = ZoneInfo("America/New_York")
OPEN, CLOSE = time(9, 30), time(16, 0)


class MarketHours:
    """Whether a time (UTC µs) is inside the regular session; the open is included, the
    close is not (a trade at 16:00:00.000 is after hours)."""

    def is_open(self, ts_us: int) -> bool:
        local = datetime.fromtimestamp(ts_us / 1e6, NEW_YORK)
        return local.weekday() < 5 and OPEN <= local.time() < CLOSE

    def mask(self, ts_us: I64) -> np.ndarray:
        """`is_open` for each time; one look-up when the first and last agree and lie within
        one session minute of each other (a poll spans milliseconds)."""
        if len(ts_us) == 0:
            return np.zeros(0, dtype=np.bool_)
        first, last = int(ts_us.min()), int(ts_us.max())
        if last - first < 60_000_000 and self.is_open(first) == self.is_open(last):
            # Sessions are longer than a minute, so no boundary lies strictly between them.
            return np.full(len(ts_us), self.is_open(first), dtype=np.bool_)
        return np.fromiter((self.is_open(int(t)) for t in ts_us), np.bool_, len(ts_us))
