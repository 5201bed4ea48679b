"""A live run with `venues = ["coingecko"]`, pointed at the simulated CoinGecko: the poller's
snapshots reach the pipeline in CommitBatch.snapshots, land in the warm store, and health
shows the poller. (The fixture server speaks CoinGecko's documented `/coins/markets`
schema; there is no CoinGecko recording.)"""

import asyncio
from pathlib import Path
from typing import Any

import duckdb
import pytest

from marketpipe.config import Settings
from marketpipe.embedded.demo import point_at
from marketpipe.embedded.live import LiveRun
from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import MarketSnapshot
from marketpipe.simulator import SimulatedExchange, SyntheticMarket
from marketpipe.simulator.coingecko import BY_ID, CoinGeckoFront

pytestmark = pytest.mark.integration


def coingecko_settings(settings: Settings, url: str) -> Settings:
    coingecko = settings.coingecko.model_copy(
        update={"rest_url": url, "assets": ["BTC", "ETH"], "poll_interval_s": 0.3}
    )
    api = settings.api.model_copy(update={"port": 0})
    scheduler = settings.scheduler.model_copy(update={"enabled": False})
    return settings.model_copy(
        update={"venues": ["coingecko"], "coingecko": coingecko, "api": api, "scheduler": scheduler}
    )


def stored_snapshots(data_dir: Path) -> list[tuple[str, int, float, float]] | None:
    """(asset, ts_source, price, market_cap) from the warm store, or None while the storage
    tier has no market_snapshots table."""
    path = next(data_dir.rglob("*.duckdb"), None)
    if path is None:
        return None
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {row[0] for row in con.sql("SHOW TABLES").fetchall()}
        if "market_snapshots" not in tables:
            return None
        rows = con.sql(
            "SELECT asset, epoch_us(ts_source), price, market_cap FROM market_snapshots"
        ).fetchall()
    return [(str(a), int(t), float(p), float(c)) for a, t, p, c in rows]


async def test_a_coingecko_live_run_commits_its_snapshots_and_reports_the_poller(
    settings: Settings,
) -> None:
    committed: list[CommitBatch] = []
    async with CoinGeckoFront.standalone(7, update_every_s=0.5) as front:
        live = LiveRun(
            coingecko_settings(settings, front.rest_url),
            on_commit=lambda batch, _ns: committed.append(batch),
        )
        health: dict[str, Any] = {}
        probes: list[asyncio.Task[None]] = []

        def ready(run: LiveRun) -> None:
            assert not run.connectors and list(run.pollers) == ["coingecko"]

            async def probe() -> None:
                await asyncio.sleep(1.5)
                health.update(run.status())

            probes.append(asyncio.get_running_loop().create_task(probe()))

        await live.run(2.0, ready)
        await asyncio.gather(*probes)
    snapshots: list[MarketSnapshot] = [s for b in committed for s in b.snapshots]
    assert {s.asset for s in snapshots} == {"BTC", "ETH"}
    assert len(snapshots) >= 4  # several polls in two seconds
    for snap in snapshots:
        coin = BY_ID["bitcoin" if snap.asset == "BTC" else "ethereum"]
        assert snap.source == "coingecko" and snap.vs_currency == "USD"
        assert snap.price == pytest.approx(front.prices(snap.asset, snap.ts_source), rel=1e-7)
        assert snap.market_cap == round(snap.price * coin.circulating_supply)
    component = health["components"]["coingecko"]
    assert component["status"] == "ok"
    assert component["errors"] == 0 and component["rate_limited"] == 0
    assert component["last_poll_age_s"] is not None and component["last_poll_age_s"] < 1.0
    assert 0 < health["components"]["engine"]["market_snapshots"] <= len(snapshots)

    stored = stored_snapshots(settings.data_dir)
    if stored is not None:  # the warm tier stores them insert-or-ignore by key
        keys = {(s.asset, s.ts_source) for s in snapshots}
        assert {(a, t) for a, t, _, _ in stored} == keys
        assert len(stored) == len(keys)


async def test_a_live_run_with_an_unreachable_coingecko_keeps_running_and_says_so(
    settings: Settings,
) -> None:
    url = "http://127.0.0.1:9/api/v3"  # discard port: nothing listens
    run_settings = coingecko_settings(settings, url)
    run_settings = run_settings.model_copy(
        update={
            "coingecko": run_settings.coingecko.model_copy(
                update={"backoff_initial_s": 0.05, "backoff_max_s": 0.1}
            )
        }
    )
    lines: list[str] = []
    health: dict[str, Any] = {}
    probes: list[asyncio.Task[None]] = []

    def ready(run: LiveRun) -> None:
        async def probe() -> None:
            await asyncio.sleep(1.2)
            health.update(run.status())

        probes.append(asyncio.get_running_loop().create_task(probe()))

    live = LiveRun(run_settings)
    live.notify = lines.append
    await live.run(1.5, ready)
    await asyncio.gather(*probes)
    component = health["components"]["coingecko"]
    assert health["status"] == "degraded" and component["status"] == "degraded"
    assert component["errors"] >= 2 and component["last_poll_age_s"] is None
    assert "ConnectError" in component["last_error"]
    assert any("cannot poll CoinGecko at" in line and "REST_URL" in line for line in lines)


async def test_coingecko_beside_a_trade_venue_commits_both_and_leaves_the_venue_unchanged(
    settings: Settings,
) -> None:
    committed: list[CommitBatch] = []
    async with (
        CoinGeckoFront.standalone(7, update_every_s=0.5) as front,
        SimulatedExchange(SyntheticMarket(["BTC-USDT"], 100, seed=3)) as exchange,
    ):
        run_settings = coingecko_settings(settings, front.rest_url)
        run_settings = point_at(
            run_settings.model_copy(
                update={"venues": ["binance", "coingecko"], "symbols": ["BTC-USDT"]}
            ),
            exchange,
        )
        live = LiveRun(run_settings, on_commit=lambda batch, _ns: committed.append(batch))
        await live.run(2.5)
        truth = {t.trade_id for t in exchange.ground_truth()}
    assert list(live.connectors) == ["binance"] and list(live.pollers) == ["coingecko"]
    trade_ids = {i for b in committed for i in b.trades.column("trade_id").to_pylist()}
    assert trade_ids and trade_ids <= truth
    assert {s.asset for b in committed for s in b.snapshots} == {"BTC", "ETH"}
