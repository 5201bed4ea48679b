"""A small synthetic recording of a second symbol, in the recorder's `<recv_ns> <json>` format,
so the dashboard has something to switch to next to the real BTCUSDT files."""

import json
import random
from pathlib import Path


def write_eth_recording(path: Path, trades: int = 600) -> Path:
    rng = random.Random(1)
    start_ms = 1723161240000  # 2024-08-08T23:54:00Z, like the BTCUSDT files
    price = 2600.0
    with path.open("w") as out:
        for i in range(trades):
            ts = start_ms + i * 1100
            price *= 1 + rng.gauss(0, 0.0008)
            frame = {
                "stream": "ethusdt@trade",
                "data": {
                    "e": "trade", "E": ts + 5, "s": "ETHUSDT", "t": 1000 + i,
                    "p": f"{price:.2f}", "q": f"{rng.uniform(0.01, 3):.4f}", "T": ts,
                    "m": rng.random() < 0.5, "M": True,
                },
            }  # fmt: skip
            out.write(f"{(ts + 7) * 1_000_000} {json.dumps(frame)}\n")
    return path
