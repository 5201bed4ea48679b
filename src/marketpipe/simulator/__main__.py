"""`python -m marketpipe.simulator`: run a simulated Binance spot exchange until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from marketpipe.model.symbols import DEFAULT_SYMBOLS
from marketpipe.simulator.exchange import run_simulator
from marketpipe.simulator.faults import FaultPlan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m marketpipe.simulator",
        description="A local exchange speaking Binance spot's WebSocket streams and REST API.",
    )
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS), help="e.g. BTCUSDT,ETHUSDT")
    parser.add_argument("--tps", type=float, default=200.0, help="trades per second, all symbols")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument(
        "--faults", default="none", help='"chaos", or e.g. "disconnect=30,drop=0.001,429=0.05"'
    )
    parser.add_argument("--recorded", nargs="*", help="replay these .recv(.gz) files instead")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    symbols = [s for s in args.symbols.replace(" ", ",").split(",") if s]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_simulator(
                symbols,
                args.tps,
                args.seed,
                FaultPlan.parse(args.faults),
                args.host,
                args.port,
                recorded=args.recorded,
            )
        )


if __name__ == "__main__":
    main()
