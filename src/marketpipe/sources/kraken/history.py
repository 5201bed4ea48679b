"""Back-fill by trade id over Kraken's REST `Trades`, which pages by time.

Kraken documents `since` as a timestamp (ns) and its cursor `last` as one; only the rows carry
the sequential `trade_id` (their 7th field). So the ids a gap needs are found by time:

1. **Where to start**: the time of the nearest trade id at or below `from_id` that we know
   (`TimeAnchors` remembers every live trade and every REST row); with none known (after a
   restart, or for a hole older than what is remembered) a search back in time finds one
   (`locate`: doubling steps back from the latest trades, then halving).
2. **Paging**: from there forward, each page starting at the time of the previous page's last
   trade, inclusively (`since` = that time - 1 ns), keeping ids >= the next one wanted. Trades
   that share a page boundary's timestamp come again and are dropped by id: none is lost,
   none doubled. Only more than a page of trades within one microsecond cannot be paged so;
   then Kraken's own ns cursor `last` is used, and if even that does not move, SourceError.

A call that pages far (20 pages) without reaching `from_id` raises SourceError but keeps what
it learnt (the rows' times), so the back-filler's retry continues where it stopped.
"""

import bisect
from typing import Final

from marketpipe.model.errors import SourceError
from marketpipe.model.records import Trade
from marketpipe.sources.kraken.rest import KrakenRestClient

# A live trade's time comes from the WebSocket; start a REST page a second before it, so a
# small disagreement between the two clocks of one exchange cannot skip a trade.
LIVE_MARGIN_NS: Final = 1_000_000_000
MAX_BARREN_PAGES: Final = 20
MAX_PROBES: Final = 64


def since_for(trade: Trade) -> int:
    """The `since` whose page starts with `trade` (a REST row's time, truncated to µs)."""
    return trade.ts_event * 1000 - 1


class TimeAnchors:
    """Known (trade id -> a `since` at or before that trade), per symbol, the latest kept."""

    def __init__(self, per_symbol: int = 4096) -> None:
        self._per_symbol = per_symbol
        self._ids: dict[str, list[int]] = {}
        self._since: dict[str, dict[int, int]] = {}

    def note(self, symbol: str, trade_id: int, since_ns: int) -> None:
        ids = self._ids.setdefault(symbol, [])
        known = self._since.setdefault(symbol, {})
        if trade_id in known:
            known[trade_id] = min(known[trade_id], since_ns)
            return
        if not ids or trade_id > ids[-1]:
            ids.append(trade_id)  # the usual case: ids arrive in order
        else:
            bisect.insort(ids, trade_id)
        known[trade_id] = since_ns
        if len(ids) > self._per_symbol:  # forget the oldest quarter at once
            drop = len(ids) - self._per_symbol * 3 // 4
            for old in ids[:drop]:
                del known[old]
            del ids[:drop]

    def note_live(self, trade: Trade) -> None:
        self.note(trade.symbol, trade.trade_id, trade.ts_event * 1000 - LIVE_MARGIN_NS)

    def at_or_before(self, symbol: str, trade_id: int) -> int | None:
        """A `since` at or before `trade_id`'s time: that of the largest known id <= it."""
        ids = self._ids.get(symbol)
        if not ids:
            return None
        i = bisect.bisect_right(ids, trade_id)
        return self._since[symbol][ids[i - 1]] if i else None


class KrakenTradeHistory:
    """`trades_from` (the back-filler's one method) on Kraken's time-paged `Trades`."""

    def __init__(
        self,
        rest: KrakenRestClient,
        anchors: TimeAnchors,
        *,
        page_size: int = 1000,
        locate_step_s: float = 60.0,
    ) -> None:
        self._rest = rest
        self.anchors = anchors
        self._page = page_size
        self._step_ns = max(1, int(locate_step_s * 1e9))

    async def trades_from(self, symbol: str, from_id: int, limit: int) -> list[Trade]:
        if limit < 1:
            return []
        since = self.anchors.at_or_before(symbol, from_id)
        if since is None:
            since = await self.locate(symbol, from_id)
        out: list[Trade] = []
        next_id = from_id
        barren = 0  # pages in a row with nothing wanted: still before from_id
        while barren < MAX_BARREN_PAGES:
            page = await self._rest.trades(symbol, since, self._page)
            wanted = len(out)
            for trade in page.trades:
                self.anchors.note(symbol, trade.trade_id, since_for(trade))
                if trade.trade_id >= next_id:
                    out.append(trade)
                    next_id = trade.trade_id + 1
                    if len(out) == limit:
                        return out
            if page.rows < self._page:
                return out  # a short page: the present
            barren = barren + 1 if len(out) == wanted else 0
            after = since_for(page.trades[-1]) if page.trades else page.last_ns
            if after <= since:  # a whole page within one microsecond: Kraken's cursor
                after = page.last_ns
            if after <= since:
                raise SourceError(f"Kraken Trades for {symbol} did not advance past {since} ns")
            since = after
        raise SourceError(
            f"Kraken Trades for {symbol}: id {from_id} not reached in {MAX_BARREN_PAGES} pages"
        )

    async def locate(self, symbol: str, from_id: int) -> int:
        """A `since` at or before trade `from_id`, searched for over REST."""
        latest = await self._rest.trades(symbol, None, self._page)
        for trade in latest.trades:
            self.anchors.note(symbol, trade.trade_id, since_for(trade))
        if not latest.trades:
            return latest.last_ns
        first = latest.trades[0]
        if first.trade_id <= from_id:
            return self._best(symbol, from_id, since_for(first))
        # `late` is known to be after trade from_id; find an `early` that is not.
        late, early, probes = since_for(first), None, 0
        step = self._step_ns
        while early is None and probes < MAX_PROBES:
            at = late - step
            if at <= 0:
                early = 0
                break
            probes += 1
            if await self._reaches(symbol, at, from_id):
                early = at
            else:
                late, step = at, step * 2
        if early is None:
            raise SourceError(f"Kraken Trades for {symbol}: id {from_id} not found back in time")
        while late - early > self._step_ns and probes < MAX_PROBES:  # narrow it down
            probes += 1
            middle = (early + late) // 2
            if await self._reaches(symbol, middle, from_id):
                early = middle
            else:
                late = middle
        return self._best(symbol, from_id, early)

    def _best(self, symbol: str, from_id: int, fallback: int) -> int:
        known = self.anchors.at_or_before(symbol, from_id)
        return fallback if known is None else max(known, fallback)

    async def _reaches(self, symbol: str, since: int, from_id: int) -> bool:
        """Does the first trade after `since` come at or before `from_id`?"""
        page = await self._rest.trades(symbol, since, 1)
        for trade in page.trades:
            self.anchors.note(symbol, trade.trade_id, since_for(trade))
        return bool(page.trades) and page.trades[0].trade_id <= from_id
