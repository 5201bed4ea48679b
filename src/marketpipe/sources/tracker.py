"""Per-symbol trade-id bookkeeping: what we have forwarded, and which ids still need fetching.

On venues whose trade ids are consecutive per symbol (Binance, Coinbase, Kraken v2), the id
alone tells us when something is missing. Two situations lead to a back-fill job:

- a live **gap**: a trade arrives with id > last + 1; the ids in between are fetched over REST;
- a **catch-up** after every (re)connect and at start: trades that happened while we were not
  connected, from the last id we know up to the first id the new connection delivers (that
  bound is only known once it arrives, so the job is open-ended until then) or up to the
  present, whichever comes first.

This module is pure logic (no I/O), so it is easy to test exhaustively.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from marketpipe.model.records import Trade


@dataclass(slots=True, eq=False)
class BackfillJob:
    """Fetch `symbol`'s trades with ids `from_id ..= to_id`.

    `to_id` is None for a catch-up whose first live id has not been seen yet; the tracker sets
    it when that trade arrives, and the job stops at the present if it never does.
    """

    symbol: str
    from_id: int
    to_id: int | None
    reason: Literal["gap", "catchup"]


@dataclass(slots=True)
class SymbolTrack:
    symbol: str
    last_id: int | None = None  # highest trade id forwarded, live or back-filled
    live_trades: int = 0
    backfilled: int = 0
    duplicates: int = 0  # live trades dropped because already forwarded
    gaps_found: int = 0
    gaps_filled: int = 0
    missing_ids: int = 0  # ids REST could not supply for a detected gap
    catchup: BackfillJob | None = None  # the open-ended catch-up awaiting its first live id


@dataclass(slots=True)
class TradeIdTracker:
    tracks: dict[str, SymbolTrack] = field(default_factory=dict)

    @classmethod
    def from_positions(cls, start_positions: Mapping[str, int] | None) -> "TradeIdTracker":
        tracker = cls()
        for symbol, last_id in (start_positions or {}).items():
            tracker.track(symbol).last_id = last_id
        return tracker

    def track(self, symbol: str) -> SymbolTrack:
        found = self.tracks.get(symbol)
        if found is None:
            found = self.tracks[symbol] = SymbolTrack(symbol)
        return found

    def on_connected(self, symbols: Iterable[str]) -> list[BackfillJob]:
        """A new connection carries `symbols`' trades: catch up on what it did not see."""
        jobs: list[BackfillJob] = []
        for symbol in symbols:
            track = self.track(symbol)
            if track.last_id is None:
                continue  # nothing known yet: the first live trade is where we start
            if track.catchup is not None and track.catchup.to_id is None:
                continue  # a catch-up still waits for its first live id; this one will do
            job = BackfillJob(symbol, track.last_id + 1, None, "catchup")
            track.catchup = job
            jobs.append(job)
        return jobs

    def on_live(self, trade: Trade) -> tuple[bool, BackfillJob | None]:
        """Decide about one live trade: (forward it?, a gap job to run or None)."""
        track = self.track(trade.symbol)
        tid = trade.trade_id
        last = track.last_id
        catchup = track.catchup
        if catchup is not None and catchup.to_id is None:
            # First live id since the reconnect: the catch-up now knows where to stop.
            catchup.to_id = tid - 1
            track.catchup = None
            if last is None or tid > last:
                track.last_id = tid
                track.live_trades += 1
                return True, None
            track.duplicates += 1
            return False, None
        if last is None or tid == last + 1:
            track.last_id = tid
            track.live_trades += 1
            return True, None
        if tid <= last:
            # Already forwarded (an overlap of two connections, or back-fill ran ahead) or out
            # of order: never a gap.
            track.duplicates += 1
            return False, None
        track.last_id = tid
        track.live_trades += 1
        track.gaps_found += 1
        return True, BackfillJob(trade.symbol, last + 1, tid - 1, "gap")

    def accept_backfill(self, job: BackfillJob, trades: Iterable[Trade]) -> list[Trade]:
        """The page's trades that `job` should forward: within its range, not yet forwarded."""
        bound = job.to_id
        kept = [
            t
            for t in trades
            if t.trade_id >= job.from_id and (bound is None or t.trade_id <= bound)
        ]
        if kept:
            track = self.track(job.symbol)
            track.backfilled += len(kept)
            newest = kept[-1].trade_id
            if track.last_id is None or newest > track.last_id:
                track.last_id = newest
        return kept

    def finish(self, job: BackfillJob, fetched: int, complete: bool) -> tuple[bool, bool]:
        """Record how `job` ended; returns (a gap was found, it was filled) for metrics.

        A catch-up counts as a gap only if it found trades we had missed.
        """
        track = self.track(job.symbol)
        if track.catchup is job:
            track.catchup = None  # reached the present before any live trade arrived
        found = job.reason == "gap" or fetched > 0
        if job.reason == "catchup" and fetched > 0:
            track.gaps_found += 1
        if found and complete:
            track.gaps_filled += 1
        elif found and job.to_id is not None:
            track.missing_ids += max(0, job.to_id - job.from_id + 1 - fetched)
        return found, found and complete
