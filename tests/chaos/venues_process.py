"""Several simulated venues in a process of their own, so the pipeline can be killed around them.

    python -m tests.chaos.venues_process <venue=SYM,SYM;venue=SYM> <trades_per_s> <seed> <faults>

Each venue gets its own front (its own port, its own protocol) over one `MultiVenueMarket`,
as `SimulatedVenues` builds them. Prints one JSON line `{venue: [ws_url, rest_url]}` once
listening. Reads commands on stdin, each answered by one line:

- `truth <path>`: pickles every trade made so far to `path`, as plain tuples
  `(exchange, symbol, trade_id, price, qty, side, ts_event)`; answers `ok`;
- `requests`: answers a JSON line `{venue: REST requests served so far}`;
- `calm`: stops injecting per-frame and REST faults (so a final run can settle); answers `ok`.

End of input stops the venues.
"""

import asyncio
import json
import pickle
import sys
from pathlib import Path

from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.venues import SimulatedVenues


def parse_listings(text: str) -> dict[str, list[str]]:
    """`binance=BTC-USDT,ETH-USDT;kraken=BTC-USD` -> {venue: [symbols]}."""
    listings: dict[str, list[str]] = {}
    for part in text.split(";"):
        venue, _, symbols = part.partition("=")
        listings[venue.strip()] = [s for s in symbols.split(",") if s]
    return listings


def rest_requests(venues: SimulatedVenues) -> dict[str, int]:
    """REST requests each front has served (every front's REST API counts them)."""
    return {v: int(getattr(venues.front(v), "rest").requests) for v in venues.venues}  # noqa: B009


async def serve(listings: dict[str, list[str]], rate: float, seed: int, faults: FaultPlan) -> None:
    venues = SimulatedVenues.build(listings, rate, seed, faults=faults)
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
                print(json.dumps(rest_requests(venues)), flush=True)
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
