"""Several simulated venues in a process of their own, so the pipeline can be killed around them.

    python -m tests.chaos.venues_process <venue=SYM,SYM;venue=SYM> <trades_per_s> <seed> <faults>

Each venue gets its own front (its own port, its own protocol) over one `MultiVenueMarket`,
as `SimulatedVenues` builds them. Prints one JSON line `{venue: [ws_url, rest_url]}` once
listening. Reads commands on stdin, each answered by one line:

- `truth <path>`: pickles every trade made so far to `path`, as plain tuples
  `(exchange, symbol, trade_id, price, qty, side, ts_event)`; answers `ok`;
- `requests`: answers a JSON line `{venue: {route: requests served so far}}`, routes as the
  front declares them (`/products/{product_id}/trades`): the log of what each venue was asked;
- `calm`: stops injecting per-frame and REST faults (so a final run can settle); answers `ok`.

End of input stops the venues.
"""

import asyncio
import json
import pickle
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.front import VenueFront
from marketpipe.simulator.venues import SimulatedVenues

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_listings(text: str) -> dict[str, list[str]]:
    """`binance=BTC-USDT,ETH-USDT;kraken=BTC-USD` -> {venue: [symbols]}."""
    listings: dict[str, list[str]] = {}
    for part in text.split(";"):
        venue, _, symbols = part.partition("=")
        listings[venue.strip()] = [s for s in symbols.split(",") if s]
    return listings


def log_requests(front: VenueFront) -> Counter[str]:
    """Count every request `front` serves, by route, without touching the front's code: its
    routes are wrapped before it starts (it builds its server from `routes()` then)."""
    counts: Counter[str] = Counter()
    declared = front.routes

    def counted(path: str, handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            counts[path] += 1
            return await handler(request)

        return handle

    def routes() -> list[web.RouteDef]:
        return [
            web.RouteDef(r.method, r.path, counted(r.path, r.handler), r.kwargs)  # type: ignore[arg-type]
            for r in declared()
        ]

    front.routes = routes  # type: ignore[method-assign]
    return counts


async def serve(listings: dict[str, list[str]], rate: float, seed: int, faults: FaultPlan) -> None:
    venues = SimulatedVenues.build(listings, rate, seed, faults=faults)
    logs = {venue: log_requests(venues.front(venue)) for venue in venues.venues}
    async with venues:
        urls = {v: [u.ws_url, u.rest_url] for v, u in venues.urls().items()}
        print(json.dumps(urls), flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            command, _, arg = line.strip().partition(" ")
            if command == "truth":
                truth = [
                    (t.exchange, t.symbol, t.trade_id, t.price, t.qty, t.side, t.ts_event)
                    for t in venues.ground_truth()
                ]
                Path(arg).write_bytes(pickle.dumps(truth))  # noqa: ASYNC240
            elif command == "requests":
                print(json.dumps(logs), flush=True)
                continue
            elif command == "calm":
                for venue in venues.venues:
                    venues.front(venue).injector.plan = FaultPlan()
            print("ok", flush=True)


def main() -> None:
    listings, rate, seed, faults = sys.argv[1:5]
    asyncio.run(serve(parse_listings(listings), float(rate), int(seed), FaultPlan.parse(faults)))


if __name__ == "__main__":
    main()
