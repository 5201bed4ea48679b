"""A data dir for dbt tests: the two recorded BTCUSDT files, a small synthetic capture of the
same hours on other venues, a synthetic multi-day, multi-symbol market, replayed through the
real pipeline (small enough for CI), and CoinGecko-style market snapshots of BTC in the
capture's hours, committed to the warm store like the pipeline's."""

import asyncio
import json
import random
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from marketpipe.analytics.build import run_for_mode
from marketpipe.analytics.runner import DbtResult, dbt_executable
from marketpipe.analytics.settings import DbtSettings
from marketpipe.config import load_settings
from marketpipe.embedded.pipeline import CommitHook
from marketpipe.embedded.replay import replay
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import ConfigError
from marketpipe.model.records import MarketSnapshot
from marketpipe.simulator import SyntheticMarket, write_trade_frames
from marketpipe.storage.embedded import EmbeddedStore
from tests.conftest import BINANCE_08, BINANCE_09

# Three symbols (not BTC: its recorded ids must stay unique), three days up to about now, so
# the warm store is fresh for `dbt source freshness`. ~0.05 trades/s: ~13k trades.
SYNTHETIC_SYMBOLS = ["ETHUSDT", "SOLUSDT", "XRPUSDT"]
SYNTHETIC_DAYS = 3
SYNTHETIC_RATE = 0.05


def require_dbt() -> DbtSettings:
    settings = DbtSettings()
    try:
        dbt_executable(settings)
    except ConfigError as exc:
        pytest.fail(f"{exc} (make test installs it: scripts/setup.d/40-dbt-venv.sh)")
    return settings


def synthetic_recordings(root: Path, *, end_us: int) -> tuple[Path, Path]:
    """SYNTHETIC_DAYS of trades up to `end_us`, and the same market's next two hours (which
    continue its trade ids) as a second file for incremental runs."""
    start_us = end_us - SYNTHETIC_DAYS * 86_400_000_000
    market = SyntheticMarket(SYNTHETIC_SYMBOLS, SYNTHETIC_RATE, 11, start_us=start_us)
    first, more = root / "synthetic.recv", root / "synthetic-more.recv"
    write_trade_frames(market.advance_columns(end_us), first)
    write_trade_frames(market.advance_columns(end_us + 2 * 3_600_000_000), more)
    return first, more


class CapturedTrade(NamedTuple):
    exchange: str
    symbol: str
    trade_id: int
    price: float
    qty: float
    side: str
    ts_event: int  # µs


HOUR_US = 3_600_000_000
# 2024-08-08 22:00 UTC: two hours before the recorded BTCUSDT trades (23:54:15 - 00:05:05).
CROSS_VENUE_START_US = 1_723_154_400 * 1_000_000
# (exchange, symbol, price level, first trade id, hours after CROSS_VENUE_START_US). BTC-USD
# trades on two venues at 22:00, three at 23:00 and 00:00 (with Binance's recorded BTC-USDT and
# a BTC-USDC beside it: one venue, two dollar quotes) and one at 01:00; BTC-EUR is its own asset.
CROSS_VENUE_LISTINGS = (
    ("coinbase", "BTC-USD", 61_840.0, 700_000_001, (0, 1, 2)),
    ("kraken", "BTC-USD", 61_790.0, 88_000_001, (0, 1, 2, 3)),
    ("kraken", "BTC-EUR", 56_400.0, 5_000_001, (1, 2)),
)
# Binance's BTC-USDC stays within the recorded BTCUSDT's span: the watermark is per exchange,
# so a Binance trade more than the allowed lateness (1 h) behind the recording would be late.
BINANCE_USDC_OFFSETS_S = (6930, 7030, 7180, 7220, 7320, 7470)  # 23:55:30 ... 00:04:30
TRADE_MINUTES = (3, 17, 29, 41, 56)


def cross_venue_trades() -> list[CapturedTrade]:
    """The synthetic capture's trades, in event-time order. Ids are consecutive per symbol
    (completeness stays 100 %); the boundary trades sit on both sides of midnight."""
    rng = random.Random(13)
    stamps: dict[tuple[str, str], list[int]] = {}
    for exchange, symbol, _, _, hours in CROSS_VENUE_LISTINGS:
        stamps[exchange, symbol] = [
            CROSS_VENUE_START_US + h * HOUR_US + m * 60_000_000 + rng.randrange(60_000_000)
            for h in hours
            for m in TRADE_MINUTES
        ]
    stamps["coinbase", "BTC-USD"].append(CROSS_VENUE_START_US + 2 * HOUR_US)  # 00:00:00.000000
    stamps["kraken", "BTC-USD"].append(CROSS_VENUE_START_US + 2 * HOUR_US - 1)  # 23:59:59.999999
    stamps["binance", "BTC-USDC"] = [
        CROSS_VENUE_START_US + s * 1_000_000 for s in BINANCE_USDC_OFFSETS_S
    ]
    levels = {(e, s): (p, i) for e, s, p, i, _ in CROSS_VENUE_LISTINGS}
    levels["binance", "BTC-USDC"] = (61_650.0, 1_500_000_001)
    trades = []
    for key, times in stamps.items():
        level, first_id = levels[key]
        for n, ts in enumerate(sorted(times)):
            price = round(level * (1 + rng.uniform(-0.002, 0.002)), 2)
            qty = round(rng.uniform(0.001, 0.4), 5)
            side = rng.choice(("buy", "sell"))
            trades.append(CapturedTrade(*key, first_id + n, price, qty, side, ts))
    return sorted(trades, key=lambda t: (t.ts_event, t.exchange, t.symbol, t.trade_id))


MINUTE_US = 60_000_000


def _btc(minutes: float, cap: float | None, supply: float | None, *, vs: str = "USD",
         rank: int | None = 1) -> MarketSnapshot:  # fmt: skip
    ts = CROSS_VENUE_START_US + round(minutes * MINUTE_US)
    return MarketSnapshot(
        source="coingecko", asset="BTC", vs_currency=vs, price=61_800.0, market_cap=cap,
        fully_diluted_valuation=None if cap is None else cap * 1.066, volume_24h=3.2e10,
        circulating_supply=supply, market_cap_rank=rank, ts_source=ts, ts_recv=ts + 2_000_000,
    )  # fmt: skip


# BTC in the capture's hours (22:00-01:00 UTC): the hour's last dollar snapshot is the one a
# mart reads. 22:00 has two (the later wins) and a euro one (never read); 23:00 has one at its
# first µs and one at its last (the last wins); 00:00's only one, at 00:00:00 exactly, belongs
# to 00:00 and knows no market cap; 01:00 has none (no row, though Kraken traded); 03:00 has
# one but no trades (no row either).
MARKET_SNAPSHOTS = (
    _btc(10, 1.2000e12, 19_730_000.0),
    _btc(50, 1.2150e12, 19_730_100.0),
    _btc(55, 1.1100e12, 19_730_100.0, vs="EUR"),
    _btc(60, 1.2200e12, 19_730_200.0),
    _btc(120 - 1 / 60_000_000, 1.2250e12, 19_730_300.0),
    _btc(120, None, 19_730_400.0, rank=None),
    _btc(300, 1.2300e12, 19_730_900.0),
)


def seed_market_snapshots(data_dir: Path, on_commit: CommitHook | None = None) -> None:
    """Commit MARKET_SNAPSHOTS to the warm store as the pipeline does (one batch, also handed
    to `on_commit`); the dbt warm snapshot copies them from there like the other tables."""
    batch = CommitBatch(snapshots=list(MARKET_SNAPSHOTS))
    store = EmbeddedStore(data_dir)
    try:
        store.commit(batch)
    finally:
        store.close()
    if on_commit is not None:
        on_commit(batch, time.perf_counter_ns())


def write_cross_venue_capture(root: Path) -> Path:
    """The capture JSONL `marketpipe replay` reads: Coinbase's times as ISO text, the other
    venues' as µs integers, as a capture may hold either."""
    path = root / "cross-venue.jsonl"
    with path.open("w") as out:
        for t in cross_venue_trades():
            line = t._asdict()
            if t.exchange == "coinbase":
                line["ts_event"] = _iso(t.ts_event)
            line["ts_recv"] = line["ts_event"]
            out.write(json.dumps(line) + "\n")
    return path


def _iso(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros).isoformat()


def replay_into(data_dir: Path, paths: list[Path], on_commit: CommitHook | None = None) -> None:
    settings = load_settings(data_dir=data_dir, log_format="json")
    replay(settings, paths, on_commit=on_commit)


def build_data_dir(root: Path, on_commit: CommitHook | None = None) -> Path:
    """Replay both recorded files, the other venues' capture of the same hours (after them:
    each exchange has its own watermark) and the synthetic market; `on_commit` sees every
    batch."""
    data_dir = root / "data"
    now_us = time.time_ns() // 1000
    synthetic, _ = synthetic_recordings(root, end_us=now_us)
    capture = write_cross_venue_capture(root)
    replay_into(data_dir, [BINANCE_08, BINANCE_09, capture], on_commit)
    replay_into(data_dir, [synthetic], on_commit)
    seed_market_snapshots(data_dir, on_commit)
    return data_dir


def more_synthetic_trades(data_dir: Path) -> Path:
    return data_dir.parent / "synthetic-more.recv"


def dbt(data_dir: Path, command: str, *args: str, settings: DbtSettings | None = None) -> DbtResult:
    """Run `dbt COMMAND` for the duckdb target the way `marketpipe dbt` does."""
    dbt_settings = settings or DbtSettings()
    store = EmbeddedStore(data_dir, read_only=True)
    try:
        return asyncio.run(
            run_for_mode(dbt_settings, command, list(args), data_dir=data_dir, store=store)
        )
    finally:
        store.close()


def copy_data_dir(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
