"""Several simulated venues at once: one front per venue over one `MultiVenueMarket`.

Each venue gets its own server (its own port), speaking its own protocol, with its own fault
injector drawing from the same `FaultPlan` (or a plan per venue). This is what the demo
runs to show every venue side by side:

    venues = SimulatedVenues.build(
        {"binance": ["BTC-USDT", "ETH-USDT"], "coinbase": ["BTC-USD", "ETH-USD"],
         "kraken": ["BTC-USD", "ETH-USD"], "finnhub": ["AAPL", "MSFT"]},
        trades_per_second=50,            # per venue (or a mapping venue -> rate)
        seed=7,
        faults=FaultPlan.parse("chaos"),  # or {"kraken": plan, ...}; None for no faults
        first_ids={"coinbase": {"BTC-USD": 1_000}},  # continue a data dir's ids
        divergences=[Divergence("kraken", "BTC", bps=80, start_s=30, duration_s=20)],
        ports={"binance": 9443},         # 0 or absent: any free port
        market_hours=False,              # True: Finnhub's stocks keep US market hours
    )
    async with venues:
        venues.urls()["kraken"].ws_url    # ws://127.0.0.1:PORT/v2
        venues.urls()["kraken"].rest_url  # http://127.0.0.1:PORT
        venues.ground_truth("coinbase")   # every trade the venue produced so far
        venues.front("binance")           # the SimulatedExchange itself

The URLs are the connectors' `ws_url` / `rest_url` settings for that venue (Binance's are
the base its connector appends `/ws` or `/stream` to, as with `SimulatedExchange`). Finnhub's
front wants a token (`VenueUrls.token`, the connector's `token` setting): any string, since it
is a local server. Its stocks trade around the clock unless `market_hours`, so a demo always
shows them; with it they keep US market hours (09:30-16:00 New York, weekdays), and closed
hours have no trades at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from marketpipe.model.records import Trade
from marketpipe.simulator.coinbase.front import CoinbaseFront
from marketpipe.simulator.divergence import Divergence
from marketpipe.simulator.exchange import SimulatedExchange
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.finnhub.front import FinnhubFront
from marketpipe.simulator.finnhub.hours import MarketHours
from marketpipe.simulator.front import VenueFront
from marketpipe.simulator.kraken.front import KrakenFront
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.multivenue import MultiVenueMarket

log = logging.getLogger(__name__)
VENUES = ("binance", "coinbase", "kraken", "finnhub")  # the venues with a front
SIMULATED_TOKEN = "simulated"  # the API token the simulated Finnhub accepts


@dataclass(frozen=True, slots=True)
class VenueUrls:
    ws_url: str
    rest_url: str
    token: str | None = None  # the API token the venue wants (Finnhub), if any


def make_front(
    venue: str,
    market: SyntheticMarket,
    faults: FaultPlan | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    tick_s: float = 0.002,
    record_send_times: bool = False,
    market_hours: bool = False,
) -> VenueFront:
    """The front of `venue` over `market` (whose trades should name that venue);
    `market_hours`: stocks trade in US market hours only (Finnhub)."""
    if venue == "binance":
        return SimulatedExchange(
            market, faults, host, port, tick_s=tick_s, record_send_times=record_send_times
        )
    if venue == "coinbase":
        return CoinbaseFront(
            market, faults, host, port, tick_s=tick_s, record_send_times=record_send_times
        )
    if venue == "kraken":
        return KrakenFront(
            market, faults, host, port, tick_s=tick_s, record_send_times=record_send_times
        )
    if venue == "finnhub":
        return FinnhubFront(
            market,
            faults,
            host,
            port,
            token=SIMULATED_TOKEN,
            hours=MarketHours() if market_hours else None,
            tick_s=tick_s,
            record_send_times=record_send_times,
        )
    raise ValueError(f"no simulated front for venue {venue!r}; there are {', '.join(VENUES)}")


def first_ids_after(last_ids: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """venue -> symbol -> last stored id, as the first ids a restarted market continues at."""
    return {venue: {s: last + 1 for s, last in ids.items()} for venue, ids in last_ids.items()}


class SimulatedVenues:
    """Fronts of several venues over one market; start and stop them together."""

    def __init__(
        self,
        market: MultiVenueMarket,
        faults: FaultPlan | Mapping[str, FaultPlan] | None = None,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        *,
        tick_s: float = 0.002,
        record_send_times: bool = False,
        market_hours: bool = False,
    ) -> None:
        self.market = market
        self.fronts: dict[str, VenueFront] = {}
        for venue in market.venues:
            plan = faults.get(venue) if isinstance(faults, Mapping) else faults
            self.fronts[venue] = make_front(
                venue,
                market.market(venue),
                plan,
                host,
                (ports or {}).get(venue, 0),
                tick_s=tick_s,
                record_send_times=record_send_times,
                market_hours=market_hours,
            )

    @classmethod
    def build(
        cls,
        listings: Mapping[str, Sequence[str]],
        trades_per_second: float | Mapping[str, float],
        seed: int,
        *,
        faults: FaultPlan | Mapping[str, FaultPlan] | None = None,
        first_ids: Mapping[str, Mapping[str, int]] | None = None,
        divergences: Iterable[Divergence] = (),
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        start_us: int | None = None,
        market_hours: bool = False,
    ) -> SimulatedVenues:
        unknown = sorted(set(listings) - set(VENUES))
        if unknown:
            raise ValueError(f"no simulated front for {unknown}; there are {', '.join(VENUES)}")
        market = MultiVenueMarket(
            listings,
            trades_per_second,
            seed,
            start_us,
            divergences=divergences,
            first_ids=first_ids,
        )
        return cls(market, faults, host, ports, market_hours=market_hours)

    async def start(self) -> None:
        started: list[VenueFront] = []
        try:
            for front in self.fronts.values():
                await front.start()
                started.append(front)
        except BaseException:
            for front in started:  # a port in use must not leave the others running
                await front.stop()
            raise

    async def stop(self) -> None:
        for front in self.fronts.values():
            await front.stop()

    async def __aenter__(self) -> SimulatedVenues:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def venues(self) -> list[str]:
        return list(self.fronts)

    def front(self, venue: str) -> VenueFront:
        try:
            return self.fronts[venue]
        except KeyError:
            raise KeyError(f"no simulated venue {venue!r}; running {self.venues}") from None

    def urls(self) -> dict[str, VenueUrls]:
        return {
            v: VenueUrls(f.ws_url, f.rest_url, f.token if isinstance(f, FinnhubFront) else None)
            for v, f in self.fronts.items()
        }

    def ground_truth(self, venue: str | None = None) -> list[Trade]:
        """Every trade produced so far: of one venue, or of all ordered by
        `(ts_event, exchange, symbol, trade_id)`."""
        if venue is not None:
            return self.front(venue).ground_truth()
        trades = [t for f in self.fronts.values() for t in f.ground_truth()]
        return sorted(trades, key=lambda t: (t.ts_event, t.exchange, t.symbol, t.trade_id))

    @property
    def fault_counts(self) -> dict[str, dict[str, int]]:
        return {v: f.fault_counts for v, f in self.fronts.items()}


async def run_venues(
    listings: Mapping[str, Sequence[str]],
    trades_per_second: float,
    seed: int,
    faults: FaultPlan | None = None,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    market_hours: bool = False,
) -> None:
    """Run several simulated venues until cancelled (`python -m marketpipe.simulator`)."""
    venues = SimulatedVenues.build(
        listings,
        trades_per_second,
        seed,
        faults=faults,
        host=host,
        ports=ports,
        market_hours=market_hours,
    )
    async with venues:
        for venue, urls in venues.urls().items():
            log.info("%s: ws %s rest %s", venue, urls.ws_url, urls.rest_url)
        await asyncio.Event().wait()
