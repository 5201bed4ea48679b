"""The offline demo: the real connectors against local simulated venues.

Binance alone runs on `SimulatedExchange` over a `SyntheticMarket`, as it always has; several
venues run on `SimulatedVenues`: one front per venue, each speaking its venue's protocol, over
one market whose assets share a fair value (so BTC is priced alike on every venue). Finnhub's
stocks (AAPL, MSFT) trade around the clock unless `market_hours`; the demo hands the Finnhub
connector the simulated front's token, so the venue needs no key offline. CoinGecko's market
data comes from a simulated CoinGecko priced at the same fair values, polled every few
seconds (a demo is short; the real one is polled every minute).
"""

from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, SecretStr

from marketpipe.config import MARKET_SOURCES, Settings
from marketpipe.embedded.live import LiveRun
from marketpipe.model.errors import ConfigError
from marketpipe.simulator import FaultPlan, SimulatedExchange, SyntheticMarket
from marketpipe.simulator.coingecko.front import CoinGeckoFront
from marketpipe.simulator.divergence import Divergence
from marketpipe.simulator.venues import VENUES as SIMULATED
from marketpipe.simulator.venues import SimulatedVenues, VenueUrls, first_ids_after
from marketpipe.sources.venue import VenueSettings
from marketpipe.sources.venues import VENUES

# How often the demo polls its simulated CoinGecko (the real one's default is 60 s).
DEMO_POLL_S = 5.0


def demo_venues() -> list[str]:
    """The venues the demo runs by default: every one with a connector and a simulated front,
    and CoinGecko's market data."""
    return [name for name in VENUES if name in SIMULATED] + list(MARKET_SOURCES)


def point_at(settings: Settings, exchange: SimulatedExchange) -> Settings:
    """Settings whose Binance endpoints are the simulated exchange's."""
    binance = settings.binance.model_copy(
        update={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url}
    )
    return settings.model_copy(update={"binance": binance})


def _pointed(section: VenueSettings, url: VenueUrls) -> VenueSettings:
    """A venue's settings with the simulated front's endpoints (and token, for Finnhub)."""
    update: dict[str, object] = {"ws_url": url.ws_url, "rest_url": url.rest_url}
    if url.token is not None:
        update["token"] = SecretStr(url.token)
    return section.model_copy(update=update)


async def demo(
    settings: Settings,
    *,
    duration_s: float | None,
    trades_per_second: float,
    faults: FaultPlan | Mapping[str, FaultPlan] | None = None,
    ready: Callable[[LiveRun], None] | None = None,
    started: Callable[[SimulatedExchange | SimulatedVenues], None] | None = None,
    divergences: Sequence[Divergence] = (),
    market_hours: bool = False,
) -> LiveRun:
    """The whole pipeline offline: the real connectors against local simulated venues.

    The exchange continues each symbol's trade ids after the last one the data dir holds, as
    a real venue would: a second demo on the same data dir stores its trades from the start
    instead of dropping them as duplicates of the first run's. `started` is handed the
    simulated venues once they run (tests read their ground truth); `divergences` move one
    venue's price away from the others' for a while (several venues only). `faults` is one
    plan for every venue or a plan per venue (several venues; a venue left out has none);
    `market_hours` makes the simulated stocks keep US market hours (09:30-16:00 New York,
    weekdays): no trades, so no candles, while the market is closed."""
    exchanges: list[SimulatedExchange | SimulatedVenues] = []
    fronts: list[CoinGeckoFront] = []
    plans = faults if isinstance(faults, Mapping) else None
    single = None if isinstance(faults, Mapping) else faults

    def plan_of(name: str) -> FaultPlan | None:
        return plans.get(name) if plans is not None else single

    async def start_venues(last_ids: dict[str, dict[str, int]]) -> dict[str, BaseModel]:
        trade_venues = settings.trade_venues
        pointed: dict[str, BaseModel] = {}
        market: SyntheticMarket | SimulatedVenues | None = None
        if trade_venues == ["binance"]:
            exchange, market = await start_binance(last_ids)
            pointed["binance"] = point_at(settings, exchange).binance
        elif trade_venues:
            market = await start_several(last_ids)
            pointed.update(
                (name, _pointed(settings.venue_settings(name), url))
                for name, url in market.urls().items()
            )
        if divergences and not isinstance(market, SimulatedVenues):
            raise ConfigError("a divergence needs several venues: add --venues")
        if "coingecko" in settings.market_sources:
            pointed["coingecko"] = await start_coingecko(market)
        return pointed

    async def start_coingecko(market: SyntheticMarket | SimulatedVenues | None) -> BaseModel:
        """A simulated CoinGecko priced at the venues' fair values (or, beside Binance alone,
        at those of the same seed and start)."""
        plan, host = plan_of("coingecko"), settings.simulator.host
        if isinstance(market, SimulatedVenues):
            front = CoinGeckoFront.over(market.market, plan, host=host)
        else:
            start_us = market.start_us if market is not None else None
            seed = settings.simulator.seed
            front = CoinGeckoFront.standalone(seed, plan, start_us=start_us, host=host)
        await front.start()
        fronts.append(front)
        live.extra_status.setdefault("simulator", {"status": "ok"})["coingecko"] = front.rest_url
        return settings.coingecko.model_copy(
            update={"rest_url": front.rest_url, "poll_interval_s": DEMO_POLL_S}
        )

    async def start_binance(
        last_ids: dict[str, dict[str, int]],
    ) -> tuple[SimulatedExchange, SyntheticMarket]:
        first_ids = {symbol: last + 1 for symbol, last in last_ids.get("binance", {}).items()}
        market = SyntheticMarket(
            settings.symbols, trades_per_second, settings.simulator.seed, first_ids=first_ids
        )
        simulator = settings.simulator
        plan = plan_of("binance")
        exchange = SimulatedExchange(market, plan, simulator.host, simulator.port)
        await exchange.start()
        exchanges.append(exchange)
        if started is not None:
            started(exchange)
        live.extra_status["simulator"] = {
            "status": "ok",
            "ws_url": exchange.ws_url,
            "faults": plan is not None and plan.any,
        }
        return exchange, market

    async def start_several(last_ids: dict[str, dict[str, int]]) -> SimulatedVenues:
        missing = [name for name in settings.trade_venues if name not in SIMULATED]
        if missing:
            raise ConfigError(
                f"no simulated venue for {', '.join(missing)}; the demo simulates "
                f"{', '.join(SIMULATED)}"
            )
        simulator = settings.simulator
        venues = SimulatedVenues.build(
            {name: settings.venue_symbols(name) for name in settings.trade_venues},
            trades_per_second,  # each venue trades at this rate
            simulator.seed,
            faults=faults,
            first_ids=first_ids_after(last_ids),
            host=simulator.host,
            ports={"binance": simulator.port} if simulator.port else None,
            divergences=divergences,
            market_hours=market_hours,
        )
        await venues.start()
        exchanges.append(venues)
        if started is not None:
            started(venues)
        urls = venues.urls()
        live.extra_status["simulator"] = {
            "status": "ok",
            "venues": {name: url.ws_url for name, url in urls.items()},
            "faults": any(p.any for p in plans.values())
            if plans is not None
            else single is not None and single.any,
            "market_hours": market_hours,
        }
        return venues

    live = LiveRun(settings, start_venues=start_venues)
    try:
        await live.run(duration_s, ready)
        return live
    finally:
        for running in [*exchanges, *fronts]:
            await running.stop()
