"""The simulated exchange in its own process, for the live benchmark.

Prints `<ws_url> <rest_url>` on one line once listening; runs until stdin closes, then
pickles its `sent_ns` (perf_counter_ns, CLOCK_MONOTONIC on Linux, so comparable with the
parent's clock) to the path given as the last argument.

    python -m bench.simulator_child <trades_per_second> <seed> <SYM,SYM,...> <out.pickle>
"""

import asyncio
import pickle
import sys
from pathlib import Path

from marketpipe.simulator import SimulatedExchange, SyntheticMarket


async def serve(rate: float, seed: int, symbols: list[str], out: Path) -> None:
    exchange = SimulatedExchange(SyntheticMarket(symbols, rate, seed), record_send_times=True)
    await exchange.start()
    try:
        print(exchange.ws_url, exchange.rest_url, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the parent closes stdin to stop us
    finally:
        await exchange.stop()
    # The event loop is done serving by now; a blocking write is fine.
    out.write_bytes(pickle.dumps(exchange.sent_ns, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: ASYNC240


def main() -> None:
    rate, seed, symbols, out = sys.argv[1:5]
    asyncio.run(serve(float(rate), int(seed), symbols.split(","), Path(out)))


if __name__ == "__main__":
    main()
