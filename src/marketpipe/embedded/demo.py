"""The offline demo: the real connector against the local simulated exchange."""

from collections.abc import Callable

from marketpipe.config import Settings
from marketpipe.embedded.live import LiveRun
from marketpipe.simulator import FaultPlan, SimulatedExchange, SyntheticMarket
from marketpipe.sources.venue import VenueSettings


def point_at(settings: Settings, exchange: SimulatedExchange) -> Settings:
    """Settings whose Binance endpoints are the simulated exchange's."""
    binance = settings.binance.model_copy(
        update={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url}
    )
    return settings.model_copy(update={"binance": binance})


async def demo(
    settings: Settings,
    *,
    duration_s: float | None,
    trades_per_second: float,
    faults: FaultPlan | None = None,
    ready: Callable[[LiveRun], None] | None = None,
) -> LiveRun:
    """The whole pipeline offline: the real connector against the local simulated exchange.

    The exchange continues each symbol's trade ids after the last one the data dir holds, as
    a real venue would: a second demo on the same data dir stores its trades from the start
    instead of dropping them as duplicates of the first run's."""
    exchanges: list[SimulatedExchange] = []

    async def start_venues(last_ids: dict[str, dict[str, int]]) -> dict[str, VenueSettings]:
        first_ids = {symbol: last + 1 for symbol, last in last_ids.get("binance", {}).items()}
        market = SyntheticMarket(
            settings.symbols, trades_per_second, settings.simulator.seed, first_ids=first_ids
        )
        simulator = settings.simulator
        exchange = SimulatedExchange(market, faults, simulator.host, simulator.port)
        await exchange.start()
        exchanges.append(exchange)
        live.extra_status["simulator"] = {
            "status": "ok",
            "ws_url": exchange.ws_url,
            "faults": faults is not None and faults.any,
        }
        return {"binance": point_at(settings, exchange).binance}

    live = LiveRun(settings, start_venues=start_venues)
    try:
        await live.run(duration_s, ready)
        return live
    finally:
        for exchange in exchanges:
            await exchange.stop()
