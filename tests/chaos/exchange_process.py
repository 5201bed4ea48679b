"""The simulated exchange in a process of its own, so the pipeline can be killed around it.

    python -m tests.chaos.exchange_process <SYM,SYM> <trades_per_s> <seed> <faults>

Prints `<ws_url> <rest_url>` once listening. Reads commands on stdin: `truth <path>` pickles
the ground truth (every trade made so far, as plain tuples) to `path`; `calm` stops injecting
per-frame and REST faults (so a final run can settle); each prints `ok`. End of input stops
the exchange.
"""

import asyncio
import pickle
import sys
from pathlib import Path

from marketpipe.simulator import FaultPlan, SimulatedExchange, SyntheticMarket


async def serve(symbols: list[str], rate: float, seed: int, faults: FaultPlan) -> None:
    exchange = SimulatedExchange(SyntheticMarket(symbols, rate, seed), faults)
    await exchange.start()
    try:
        print(exchange.ws_url, exchange.rest_url, flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            command, _, arg = line.strip().partition(" ")
            if command == "truth":
                truth = [
                    (t.symbol, t.trade_id, t.price, t.qty, t.side, t.ts_event)
                    for t in exchange.ground_truth()
                ]
                Path(arg).write_bytes(pickle.dumps(truth))  # noqa: ASYNC240
            elif command == "calm":
                exchange.injector.plan = FaultPlan()
            print("ok", flush=True)
    finally:
        await exchange.stop()


def main() -> None:
    symbols, rate, seed, faults = sys.argv[1:5]
    asyncio.run(serve(symbols.split(","), float(rate), int(seed), FaultPlan.parse(faults)))


if __name__ == "__main__":
    main()
