"""The CoinGecko client and poller against the simulated CoinGecko (a real local HTTP server
speaking `/api/v3/coins/markets`): polling, the API key header, 429 + Retry-After, malformed
bodies, a dead server."""

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from marketpipe.observability.metrics import REGISTRY
from marketpipe.simulator.coingecko import BY_ID, CoinGeckoFront
from marketpipe.simulator.faults import FaultPlan
from marketpipe.sources.coingecko.client import MarketsClient, Refused, Unavailable, retry_after_s
from marketpipe.sources.coingecko.markets import ParsedMarkets
from marketpipe.sources.coingecko.poller import MarketPoller
from marketpipe.sources.coingecko.settings import CoinGeckoSettings

SEED = 7


def settings_for(url: str, **update: object) -> CoinGeckoSettings:
    values: dict[str, object] = {
        "rest_url": url,
        "assets": ["BTC", "ETH", "solana"],
        "poll_interval_s": 0.02,
        "requests_per_minute": 10_000,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "rest_timeout_s": 2.0,
        **update,
    }
    return CoinGeckoSettings.model_validate(values)


async def take(poller: MarketPoller, n: int, timeout_s: float = 5.0) -> list[ParsedMarkets]:
    batches: list[ParsedMarkets] = []

    async def collect() -> None:
        async for batch in poller.batches():
            batches.append(batch)
            if len(batches) >= n:
                return

    await asyncio.wait_for(collect(), timeout_s)
    return batches


@pytest.fixture
async def front() -> AsyncIterator[CoinGeckoFront]:
    async with CoinGeckoFront.standalone(SEED, update_every_s=0.1) as f:
        yield f


async def test_polls_yield_the_configured_coins_priced_as_the_server_prices_them(
    front: CoinGeckoFront,
) -> None:
    poller = MarketPoller(settings_for(front.rest_url))
    try:
        batches = await take(poller, 3)
    finally:
        await poller.aclose()
    for batch in batches:
        assert batch.dead_letters == []
        assert sorted(s.asset for s in batch.snapshots) == ["BTC", "ETH", "SOL"]
        for snap in batch.snapshots:
            coin = BY_ID[{"BTC": "bitcoin", "ETH": "ethereum", "SOL": "solana"}[snap.asset]]
            # Independent of the front's own rounding: its price source at the snapshot's time.
            fair = front.prices(snap.asset, snap.ts_source)
            assert snap.price == pytest.approx(fair, rel=1e-7)
            assert snap.market_cap == round(snap.price * coin.circulating_supply)
            assert snap.circulating_supply == coin.circulating_supply
            assert snap.ts_source % 100_000 == 0  # floored to the 0.1 s update
            assert snap.ts_recv >= snap.ts_source
    status = poller.status()
    assert status.successes == 3 and status.snapshots == 9 and status.errors == 0
    assert status.health()["status"] == "ok"
    assert status.health()["last_poll_age_s"] is not None


async def test_the_api_key_travels_in_the_demo_header_and_a_wrong_one_is_refused() -> None:
    async with CoinGeckoFront.standalone(SEED, api_key="demo-secret") as front:
        good = MarketsClient(settings_for(front.rest_url, api_key="demo-secret"))
        bad = MarketsClient(settings_for(front.rest_url, api_key="wrong"))
        try:
            assert len((await good.fetch()).snapshots) == 3
            with pytest.raises(Refused, match="401"):
                await bad.fetch()
        finally:
            await good.aclose()
            await bad.aclose()
    assert "demo-secret" not in good.url and "demo-secret" not in str(good.params)
    assert "demo-secret" not in repr(good.settings)


async def test_a_429_is_waited_out_for_its_retry_after_before_the_next_request() -> None:
    # Two requests a second per IP: the third at once is a 429 with Retry-After: 1.
    async with CoinGeckoFront.standalone(SEED, requests=2, per_s=1.0) as front:
        poller = MarketPoller(settings_for(front.rest_url, poll_interval_s=0.001))
        try:
            await take(poller, 3)
        finally:
            await poller.aclose()
    statuses = [status for _, status in front.requests]
    assert statuses[:4] == [200, 200, 429, 200]
    refused_at, next_at = front.requests[2][0], front.requests[3][0]
    assert next_at - refused_at >= 1.0  # Retry-After honoured, not hammered
    status = poller.status()
    assert status.rate_limited == 1 and status.last_retry_after_s == 1.0
    assert status.health()["rate_limited"] == 1


async def test_a_malformed_body_is_dead_lettered_and_counted_and_polling_goes_on() -> None:
    before = REGISTRY.get_sample_value("dead_letters_total", {"source": "coingecko"}) or 0.0
    async with CoinGeckoFront.standalone(SEED, FaultPlan(malformed_prob=1.0, seed=1)) as front:
        poller = MarketPoller(settings_for(front.rest_url))
        try:
            batches = await take(poller, 2)
        finally:
            await poller.aclose()
    for batch in batches:
        assert batch.snapshots == []
        [dead] = batch.dead_letters
        assert dead.source == "coingecko" and dead.raw
        assert dead.context.startswith("rest:http://127.0.0.1:")
    after = REGISTRY.get_sample_value("dead_letters_total", {"source": "coingecko"})
    assert after is not None and after - before == 2
    assert poller.status().dead_letters == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_dead_server_is_retried_with_backoff_until_it_answers() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v3"
    poller = MarketPoller(settings_for(url))
    got: list[ParsedMarkets] = []

    async def poll() -> None:
        async for batch in poller.batches():
            got.append(batch)
            return

    task = asyncio.create_task(poll())
    try:
        deadline = time.monotonic() + 3.0
        while poller.status().errors < 3 and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a status
            await asyncio.sleep(0.02)
        status = poller.status()
        assert status.errors >= 3 and status.successes == 0
        assert status.health()["status"] == "degraded"
        assert "ConnectError" in (status.last_error or "")
        async with CoinGeckoFront.standalone(SEED, port=port):
            await asyncio.wait_for(task, 3.0)
    finally:
        task.cancel()
        await poller.aclose()
    assert len(got[0].snapshots) == 3
    assert poller.status().consecutive_failures == 0
    assert poller.status().health()["status"] == "ok"


async def test_a_failing_server_5xx_counts_as_an_error_and_recovers(front: CoinGeckoFront) -> None:
    front.injector.plan = FaultPlan(rest_418_prob=1.0)  # answered as CoinGecko's 503
    client = MarketsClient(settings_for(front.rest_url))
    try:
        with pytest.raises(Unavailable, match="503"):
            await client.fetch()
        front.injector.plan = FaultPlan()
        assert len((await client.fetch()).snapshots) == 3
    finally:
        await client.aclose()


async def test_the_local_rate_limit_spaces_requests_within_the_minute() -> None:
    async with CoinGeckoFront.standalone(SEED) as front:
        client = MarketsClient(settings_for(front.rest_url, requests_per_minute=2))
        try:
            await client.fetch()
            await client.fetch()
            with pytest.raises(TimeoutError):  # the third waits for the window, unsent
                await asyncio.wait_for(client.fetch(), 0.5)
        finally:
            await client.aclose()
    assert len(front.requests) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("5", 5.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("1.5", 1.5),
        ("99999", 900.0),  # capped
        (None, 60.0),  # absent: the configured pause
        ("soon", 60.0),
        ("nan", 60.0),
    ],
)
def test_retry_after_reads_seconds_and_falls_back(header: str | None, expected: float) -> None:
    assert retry_after_s(header, 60.0, 900.0) == expected


def test_retry_after_reads_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28.0 <= retry_after_s(when, 60.0, 900.0) <= 30.0
