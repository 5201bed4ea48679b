"""`python -m marketpipe.simulator`: run simulated venues until Ctrl-C.

Binance alone by default (as before); `--venues binance,coinbase,kraken` runs each venue's
front on its own port (`--port`, `--port`+1, ...) over one market, with `--assets` listed on
the non-Binance venues in USD (`BTC-USD`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from marketpipe.model.symbols import DEFAULT_SYMBOLS
from marketpipe.simulator.exchange import run_simulator
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.listings import default_symbols
from marketpipe.simulator.venues import run_venues


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
    parser.add_argument("--venues", default="binance", help="e.g. binance,coinbase,kraken")
    parser.add_argument("--assets", default="BTC,ETH", help="listed on the crypto venues")
    parser.add_argument(
        "--market-hours", action="store_true", help="stocks (finnhub) keep US market hours"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    symbols = [s for s in args.symbols.replace(" ", ",").split(",") if s]
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    if venues != ["binance"]:
        assets = tuple(a.strip().upper() for a in args.assets.split(",") if a.strip())
        listings = {v: symbols if v == "binance" else default_symbols(v, assets) for v in venues}
        ports = {v: args.port + i for i, v in enumerate(venues)}
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                run_venues(
                    listings,
                    args.tps,
                    args.seed,
                    FaultPlan.parse(args.faults),
                    args.host,
                    ports,
                    market_hours=args.market_hours,
                )
            )
        return
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
