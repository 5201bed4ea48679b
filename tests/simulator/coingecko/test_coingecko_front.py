"""The simulated CoinGecko speaks `/api/v3/coins/markets` as documented: prices at the fair
value, market cap = price x circulating supply, ranks, ids, errors and the rate limit."""

from collections.abc import AsyncIterator

import httpx
import pytest

from marketpipe.simulator.coingecko import BY_ID, COINS, CoinGeckoFront, iso_ms
from marketpipe.simulator.faults import FaultPlan
from marketpipe.simulator.multivenue import MultiVenueMarket

START_US = 1_722_470_400_000_000  # 2024-08-01T00:00:00Z
DOCUMENTED_FIELDS = {
    "id", "symbol", "name", "image", "current_price", "market_cap", "market_cap_rank",
    "fully_diluted_valuation", "total_volume", "high_24h", "low_24h", "price_change_24h",
    "price_change_percentage_24h", "market_cap_change_24h",
    "market_cap_change_percentage_24h", "circulating_supply", "total_supply", "max_supply",
    "ath", "ath_change_percentage", "ath_date", "atl", "atl_change_percentage", "atl_date",
    "roi", "last_updated",
}  # fmt: skip


class Clock:
    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


@pytest.fixture
def clock() -> Clock:
    return Clock(START_US + 90_500_000)  # 90.5 s into the market


@pytest.fixture
async def front(clock: Clock) -> AsyncIterator[CoinGeckoFront]:
    async with CoinGeckoFront.standalone(
        7, start_us=START_US, clock=clock, update_every_s=60.0, requests=3, per_s=60.0
    ) as f:
        yield f


async def markets(front: CoinGeckoFront, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=front.rest_url) as client:
        return await client.get("/coins/markets", params=params)


async def test_market_cap_is_price_times_circulating_supply_at_the_floored_update(
    front: CoinGeckoFront,
) -> None:
    response = await markets(front, vs_currency="usd", ids="ethereum,bitcoin,not-a-coin")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    rows = response.json()
    assert [r["id"] for r in rows] == ["bitcoin", "ethereum"]  # by market cap; unknown left out
    updated = START_US + 60_000_000  # 90.5 s floored to the minute
    for row in rows:
        assert set(row) == DOCUMENTED_FIELDS
        coin = BY_ID[row["id"]]
        assert row["last_updated"] == iso_ms(updated) == "2024-08-01T00:01:00.000Z"
        fair = front.prices(coin.asset, updated)
        assert row["current_price"] == pytest.approx(fair, rel=1e-7)
        assert row["market_cap"] == round(row["current_price"] * coin.circulating_supply)
        assert row["circulating_supply"] == coin.circulating_supply
        assert row["roi"] is None and row["ath_date"] is None
    btc, eth = rows
    assert btc["market_cap_rank"] == 1 and eth["market_cap_rank"] == 2
    assert btc["fully_diluted_valuation"] == round(btc["current_price"] * 21_000_000)
    assert eth["max_supply"] is None  # no cap: FDV from the total supply
    assert eth["fully_diluted_valuation"] == round(eth["current_price"] * eth["total_supply"])


async def test_polls_within_one_update_see_the_same_snapshot_and_the_next_a_new_one(
    front: CoinGeckoFront, clock: Clock
) -> None:
    first = (await markets(front, vs_currency="usd", ids="bitcoin")).json()
    clock.now_us += 29_000_000  # 119.5 s: same minute
    same = (await markets(front, vs_currency="usd", ids="bitcoin")).json()
    clock.now_us += 1_000_000  # 120.5 s: the next update
    later = (await markets(front, vs_currency="usd", ids="bitcoin")).json()
    assert same == first
    assert later[0]["last_updated"] == "2024-08-01T00:02:00.000Z"
    assert later[0]["current_price"] != first[0]["current_price"]


async def test_without_ids_every_coin_ranks_one_to_n_by_market_cap(front: CoinGeckoFront) -> None:
    rows = (await markets(front, vs_currency="usd", per_page="250")).json()
    assert len(rows) == len(COINS)
    assert [r["market_cap_rank"] for r in rows] == list(range(1, len(COINS) + 1))
    caps = [r["market_cap"] for r in rows]
    assert caps == sorted(caps, reverse=True)


async def test_over_the_limit_answers_429_with_retry_after(front: CoinGeckoFront) -> None:
    statuses = [(await markets(front, vs_currency="usd")).status_code for _ in range(3)]
    refused = await markets(front, vs_currency="usd")
    assert statuses == [200, 200, 200]  # the limit: 3 a minute, as a burst
    assert refused.status_code == 429
    # One token back takes 60 s / 3 = 20 s; Retry-After is whole seconds, rounded up.
    assert 19 <= int(refused.headers["Retry-After"]) <= 20
    assert refused.json()["status"]["error_code"] == 429
    assert [s for _, s in front.requests] == [200, 200, 200, 429]


async def test_bad_currency_or_missing_currency_is_a_400(front: CoinGeckoFront) -> None:
    assert (await markets(front, vs_currency="eur")).json() == {"error": "invalid vs_currency"}
    missing = await markets(front)
    assert missing.status_code == 400 and "vs_currency" in missing.json()["error"]


async def test_ping_answers_like_coingecko(front: CoinGeckoFront) -> None:
    async with httpx.AsyncClient(base_url=front.rest_url) as client:
        response = await client.get("/ping")
    assert response.json() == {"gecko_says": "(V3) To the Moon!"}


async def test_fault_plan_429_carries_its_retry_after_and_418_is_a_503() -> None:
    async with CoinGeckoFront.standalone(7, FaultPlan(rest_429_prob=1.0, retry_after_s=4)) as f:
        limited = await markets(f, vs_currency="usd")
        f.injector.plan = FaultPlan(rest_418_prob=1.0)
        outage = await markets(f, vs_currency="usd")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "4"
    assert outage.status_code == 503


async def test_a_malformed_fault_sends_a_body_that_is_not_the_json_array() -> None:
    async with CoinGeckoFront.standalone(7, FaultPlan(malformed_prob=1.0)) as f:
        response = await markets(f, vs_currency="usd", ids="bitcoin")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert f.fault_counts["malformed"] == 1


async def test_over_a_multivenue_market_the_price_is_the_shared_fair_value() -> None:
    market = MultiVenueMarket({"coinbase": ["BTC-USD"], "kraken": ["BTC-USD"]}, 10, 7, START_US)
    clock = Clock(START_US + 5_000_000)
    async with CoinGeckoFront.over(market, clock=clock) as f:
        [row] = (await markets(f, vs_currency="usd", ids="bitcoin")).json()
    fair = float(market.fair_price("BTC", START_US + 5_000_000))
    assert row["current_price"] == pytest.approx(fair, rel=1e-7)
    # The standalone paths are the same paths for the same seed and start.
    standalone = CoinGeckoFront.standalone(7, start_us=START_US)
    assert standalone.prices("BTC", START_US + 5_000_000) == pytest.approx(fair, rel=1e-12)
