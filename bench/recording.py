"""The synthetic input of the replay benchmark: Binance trade frames in our recording format."""

import time
from dataclasses import dataclass
from pathlib import Path

from marketpipe.config import DEFAULT_SYMBOLS
from marketpipe.simulator import SyntheticMarket, write_trade_frames

SYMBOLS: list[str] = list(DEFAULT_SYMBOLS)  # 20 USDT pairs
# Whole-market event rate of the recording: 2M trades span ~33 min of event time, so every
# interval up to 15m finalizes several times and 1h/4h/1d stay open until the end flush.
EVENT_RATE = 1_000.0
SEED = 42


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path
    trades: int
    symbols: int
    bytes: int
    event_rate: float
    generate_s: float


def write_recording(path: Path, trades: int, symbols: list[str] = SYMBOLS) -> Recording:
    """Generate `trades` trades and write them as plain (not gzipped) frames to `path`."""
    started = time.perf_counter()
    columns = SyntheticMarket(symbols, EVENT_RATE, SEED).generate(trades)
    size = write_trade_frames(columns, path, seed=SEED, gzipped=False)
    return Recording(
        path, len(columns), len(symbols), size, EVENT_RATE, time.perf_counter() - started
    )
