"""The shared input of every replay scenario: synthetic trades as Binance frames, cached.

Byte-for-byte Binance combined-stream `@trade` frames in our `<recv_ns> <json>` recording
format, written by the simulator's own frame writer, split into files of `PER_FILE` trades so
every engine (marketpipe, PySpark, DuckDB, Polars) reads the very same files in parallel.
Generated once per (size, seed, rate) into `.cache/bench/` and reused; `manifest.json` is
written last, so an interrupted generation is redone rather than half-used.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from marketpipe.model.symbols import DEFAULT_SYMBOLS
from marketpipe.simulator import SyntheticMarket, write_trade_frames

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "bench"
SYMBOLS: list[str] = list(DEFAULT_SYMBOLS)  # 20 USDT pairs
# Whole-market event rate: 10M trades span ~2.8 h of event time, so every interval up to 1h
# finalizes several times and 4h/1d stay open until the end-of-input flush.
EVENT_RATE = 1_000.0
SEED = 42
START_US = 1_723_161_600_000_000  # 2024-08-09 00:00 UTC: fixed, so the cache is reproducible
PER_FILE = 1_000_000
VERSION = 1  # bump when the generator's output changes


@dataclass(frozen=True, slots=True)
class Dataset:
    directory: str
    files: list[str]
    trades: int
    symbols: list[str]
    bytes: int
    event_rate_per_s: float
    first_ts_us: int
    last_ts_us: int
    seed: int
    generate_seconds: float
    cached: bool = False

    @property
    def paths(self) -> list[Path]:
        return [Path(self.directory) / name for name in self.files]

    def describe(self) -> dict[str, object]:
        info = asdict(self)
        info["format"] = "<recv_ns> <Binance combined-stream trade frame>, plain text"
        info["event_hours"] = round((self.last_ts_us - self.first_ts_us) / 3.6e9, 2)
        return info


def dataset(trades: int, cache: Path = CACHE) -> Dataset:
    """The cached dataset of `trades` trades, generating it on first use."""
    directory = cache / f"trades-{trades}-s{SEED}-r{EVENT_RATE:g}-v{VERSION}"
    manifest = directory / "manifest.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        if all((directory / name).is_file() for name in info["files"]):
            return Dataset(**{**info, "directory": str(directory), "cached": True})
    return _generate(directory, trades)


def _generate(directory: Path, trades: int) -> Dataset:
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*"):
        stale.unlink()
    market = SyntheticMarket(SYMBOLS, EVENT_RATE, SEED, start_us=START_US)
    files: list[str] = []
    size = 0
    first_ts = last_ts = 0
    left, index = trades, 0
    while left > 0:
        columns = market.generate(min(PER_FILE, left))
        if index == 0:
            first_ts = int(columns.ts_us[0])
        last_ts = int(columns.ts_us[-1])
        name = f"part-{index:03d}.recv"
        print(f"  dataset: writing {name} ({len(columns):,} trades)", flush=True)
        size += write_trade_frames(columns, directory / name, seed=SEED + index, gzipped=False)
        files.append(name)
        left -= len(columns)
        index += 1
    ds = Dataset(
        directory=str(directory), files=files, trades=trades, symbols=SYMBOLS, bytes=size,
        event_rate_per_s=EVENT_RATE, first_ts_us=first_ts, last_ts_us=last_ts, seed=SEED,
        generate_seconds=round(time.perf_counter() - started, 1),
    )  # fmt: skip
    info = asdict(ds)
    info.pop("cached")
    tmp = directory / "manifest.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.rename(directory / "manifest.json")
    return ds
