"""The simulated Binance exchange, with one switch for the alert test: the symbols listed in
the file named by HALT_FILE (one a line, e.g. ETHUSDT) stop trading, frames and REST alike.

Runs inside the marketpipe image (the compose override mounts this file):
    python3 halting_exchange.py --symbols BTCUSDT,ETHUSDT --port 9443
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from marketpipe.simulator.exchange import SimulatedExchange
from marketpipe.simulator.feed import Frame, SyntheticFeed
from marketpipe.simulator.market import SyntheticMarket


class HaltingFeed(SyntheticFeed):
    def __init__(self, market: SyntheticMarket, halt_file: Path) -> None:
        super().__init__(market, 1_000_000)
        self.halt_file = halt_file

    def halted(self) -> set[str]:
        try:
            return {s.strip().lower() for s in self.halt_file.read_text().split() if s.strip()}
        except FileNotFoundError:
            return set()

    def poll(self, now_us: int) -> list[Frame]:
        frames = super().poll(now_us)
        halted = self.halted()
        if not halted:
            return frames
        return [f for f in frames if f[0].split("@", 1)[0] not in halted]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    parser.add_argument("--tps", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=9443)
    args = parser.parse_args()
    market = SyntheticMarket(args.symbols.split(","), args.tps, 7)
    feed = HaltingFeed(market, Path(os.environ.get("HALT_FILE", "/control/halt")))
    exchange = SimulatedExchange(feed, host="0.0.0.0", port=args.port)
    await exchange.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
