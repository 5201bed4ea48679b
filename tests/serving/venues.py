"""A small multi-venue data set: captured trades of one asset on three venues (and a non-dollar
and a second asset), replayed into a data dir, for the cross-venue API and dashboard tests."""

import json
import os
from pathlib import Path

from marketpipe.config import load_settings
from marketpipe.embedded.replay import replay

T0 = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z, µs
# (exchange, symbol, [(price, qty, seconds after T0)]); the last trade sets the last price.
TRADES = [
    ("binance", "BTC-USDT", [(61_000.0, 0.5, 1), (61_010.0, 1.5, 30), (61_020.0, 1.0, 75)]),
    ("coinbase", "BTC-USD", [(60_990.0, 2.0, 5), (61_050.0, 1.0, 70)]),
    ("kraken", "BTC-USD", [(61_030.0, 0.25, 10), (61_000.0, 0.75, 65)]),
    ("kraken", "BTC-EUR", [(56_000.0, 1.0, 12)]),  # not dollars: left out by default
    # Coinbase's newest candle overall: the BTC row must still read BTC's own.
    ("coinbase", "ETH-USD", [(2_600.0, 3.0, 130)]),
]


def _capture(path: Path) -> Path:
    lines = []
    for exchange, symbol, trades in TRADES:
        for n, (price, qty, seconds) in enumerate(trades):
            ts = T0 + seconds * 1_000_000
            row = {
                "exchange": exchange, "symbol": symbol, "trade_id": 100 + n, "price": price,
                "qty": qty, "side": "buy", "ts_event": ts, "ts_recv": ts,
            }  # fmt: skip
            lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def venues_data_dir(root: Path) -> Path:
    """A data dir holding TRADES, replayed from a capture file."""
    cwd = os.getcwd()
    os.chdir(root)  # no stray marketpipe.toml
    try:
        replay(load_settings(data_dir=root / "data"), [_capture(root / "capture.jsonl")])
    finally:
        os.chdir(cwd)
    return root / "data"
