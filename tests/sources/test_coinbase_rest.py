"""CoinbaseRestClient against a local server speaking Coinbase's trade pagination: id
boundaries, the taker side, a full round trip, 429 pauses, 5xx retries and clear 4xx errors."""

import time
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest

from marketpipe.model.errors import SourceError
from marketpipe.sources.coinbase.rest import CoinbaseRestClient
from tests.sources.fake_coinbase import FakeCoinbaseRest, rest_settings, trade_row

pytestmark = pytest.mark.integration


@pytest.fixture
async def cb() -> AsyncIterator[FakeCoinbaseRest]:
    server = await FakeCoinbaseRest({"BTC-USD": 5000}).start()
    try:
        yield server
    finally:
        await server.stop()


def expected_us(trade_id: int) -> int:
    text = str(trade_row(trade_id)["time"]).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


async def test_a_page_is_from_id_upward_oldest_first_with_the_taker_side(
    cb: FakeCoinbaseRest,
) -> None:
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        trades = await rest.trades_from("BTC-USD", 1001, 4)
    assert [t.trade_id for t in trades] == [1001, 1002, 1003, 1004]  # from_id in, 1005 out
    assert cb.calls[-1][1] == {"limit": "4", "after": "1005"}
    first = trades[0]
    assert (first.exchange, first.symbol) == ("coinbase", "BTC-USD")
    assert first.side == "buy"  # odd ids: the maker sold, so the taker bought
    assert trades[1].side == "sell"
    assert (first.price, first.qty) == (100 + 1001 % 7 + 0.25, 0.5)
    assert first.ts_event == expected_us(1001)


async def test_near_the_present_the_page_is_short_and_holds_nothing_below_from_id(
    cb: FakeCoinbaseRest,
) -> None:
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        near = await rest.trades_from("BTC-USD", 4995, 10)  # newest 5000 < 4995 + 10 - 1
        newest = await rest.trades_from("BTC-USD", 5000, 10)
        beyond = await rest.trades_from("BTC-USD", 5001, 10)
    assert [t.trade_id for t in near] == [4995, 4996, 4997, 4998, 4999, 5000]
    assert [t.trade_id for t in newest] == [5000]
    assert beyond == []


async def test_the_exact_last_full_page_ends_at_the_newest_id(cb: FakeCoinbaseRest) -> None:
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        page = await rest.trades_from("BTC-USD", 4991, 10)
    assert [t.trade_id for t in page] == list(range(4991, 5001))
    assert cb.calls[-1][1]["after"] == "5001"


async def test_paging_from_the_first_id_returns_every_id_once_in_order(
    cb: FakeCoinbaseRest,
) -> None:
    got: list[int] = []
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        next_id = 1
        while True:
            page = await rest.trades_from("BTC-USD", next_id, 1000)
            got += [t.trade_id for t in page]
            if len(page) < 1000:
                break
            next_id = page[-1].trade_id + 1
    assert got == list(range(1, 5001))
    assert len(cb.calls) == 6  # five full pages and the empty one at the present


async def test_limit_is_capped_at_1000(cb: FakeCoinbaseRest) -> None:
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        page = await rest.trades_from("BTC-USD", 1, 5000)
    assert len(page) == 1000 and cb.calls[-1][1] == {"limit": "1000", "after": "1001"}


async def test_429_with_retry_after_pauses_then_succeeds(cb: FakeCoinbaseRest) -> None:
    cb.faults = [(429, {"Retry-After": "1"})]
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        page = await rest.trades_from("BTC-USD", 10, 2)
    assert [t.trade_id for t in page] == [10, 11]
    assert cb.calls[1][2] - cb.calls[0][2] >= 0.99


async def test_429_without_retry_after_pauses_rate_limit_pause_s(cb: FakeCoinbaseRest) -> None:
    cb.faults = [(429, {})]
    async with CoinbaseRestClient(rest_settings(cb, rate_limit_pause_s=0.4)) as rest:
        page = await rest.trades_from("BTC-USD", 10, 1)
    assert [t.trade_id for t in page] == [10]
    assert cb.calls[1][2] - cb.calls[0][2] >= 0.39


async def test_persistent_429_gives_a_clear_source_error(cb: FakeCoinbaseRest) -> None:
    cb.faults = [(429, {"Retry-After": "0"})] * 3
    async with CoinbaseRestClient(rest_settings(cb), max_attempts=3) as rest:
        with pytest.raises(SourceError, match=r"after 3 attempts.*HTTP 429: fault 429"):
            await rest.trades_from("BTC-USD", 10, 1)
    assert len(cb.calls) == 3


async def test_server_errors_are_retried(cb: FakeCoinbaseRest) -> None:
    cb.faults = [(503, {}), (500, {})]
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        page = await rest.trades_from("BTC-USD", 10, 2)
    assert [t.trade_id for t in page] == [10, 11] and len(cb.calls) == 3


async def test_unknown_product_fails_at_once_with_coinbase_message(cb: FakeCoinbaseRest) -> None:
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        with pytest.raises(SourceError, match=r"HTTP 404: NotFound"):
            await rest.trades_from("NOPE-USD", 1, 10)
    assert len(cb.calls) == 1


async def test_unreachable_server_raises_after_bounded_attempts() -> None:
    fake = FakeCoinbaseRest()
    fake.port = 9
    async with CoinbaseRestClient(rest_settings(fake), max_attempts=2) as rest:
        with pytest.raises(SourceError, match="after 2 attempts"):
            await rest.trades_from("BTC-USD", 1, 10)


async def test_requests_are_paced_by_rest_requests_per_second(cb: FakeCoinbaseRest) -> None:
    async with CoinbaseRestClient(rest_settings(cb, rest_requests_per_second=5)) as rest:
        started = time.monotonic()
        for i in range(4):
            await rest.trades_from("BTC-USD", 1 + i, 1)
    assert time.monotonic() - started >= 0.59  # 4 requests at 5/s: 3 intervals of 0.2 s


async def test_negative_from_id_is_refused(cb: FakeCoinbaseRest) -> None:
    async with CoinbaseRestClient(rest_settings(cb)) as rest:
        with pytest.raises(ValueError, match="from_id"):
            await rest.trades_from("BTC-USD", -1, 10)


async def test_shared_httpx_client_is_not_closed(cb: FakeCoinbaseRest) -> None:
    async with httpx.AsyncClient() as client:
        rest = CoinbaseRestClient(rest_settings(cb), client)
        await rest.aclose()
        assert not client.is_closed
