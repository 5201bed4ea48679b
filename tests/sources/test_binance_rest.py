"""BinanceRestClient against the local fake: parsing, Retry-After, weights, clear errors."""

import time

import httpx
import pytest

from marketpipe.model.errors import SourceError
from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.binance.rest import BinanceRestClient
from tests.sources.fake_binance import FakeBinance, fast_settings

pytestmark = pytest.mark.integration


async def test_historical_trades_parse_into_records_with_taker_side(fake: FakeBinance) -> None:
    await fake.trade(n=5, deliver=False)
    async with BinanceRestClient(fast_settings(fake)) as rest:
        trades = await rest.historical_trades("BTCUSDT", 1002, 2)
    assert [t.trade_id for t in trades] == [1002, 1003]
    first = trades[0]
    assert first.symbol == "BTC-USDT" and first.exchange == "binance"
    assert first.side == "sell"  # isBuyerMaker true (even ids in the fake) -> taker sold
    assert trades[1].side == "buy"
    assert first.price == 101.5 and first.qty == 0.25  # 100 + 1002 % 7 + 0.5
    assert first.ts_event == fake.log["BTCUSDT"][2]["time"] * 1000
    params = fake.rest_calls[-1][1]
    assert params == {"symbol": "BTCUSDT", "fromId": "1002", "limit": "2"}


async def test_exchange_info_seeds_the_symbol_map(fake: FakeBinance) -> None:
    async with BinanceRestClient(fast_settings(fake)) as rest:
        symbols = await rest.symbol_map_from_exchange_info(["BTCUSDT", "ETHUSDT"])
    assert symbols.normalize("ETHUSDT") == "ETH-USDT" and symbols.native("BTC-USDT") == "BTCUSDT"
    assert fake.rest_calls[-1][1] == {"symbols": '["BTCUSDT","ETHUSDT"]'}


async def test_429_retry_after_is_honoured_then_the_request_succeeds(fake: FakeBinance) -> None:
    await fake.trade(n=1, deliver=False)
    fake.rest_faults = [(429, {"Retry-After": "1"})]
    async with BinanceRestClient(fast_settings(fake)) as rest:
        started = time.monotonic()
        trades = await rest.historical_trades("BTCUSDT", 1000, 10)
        waited = time.monotonic() - started
    assert [t.trade_id for t in trades] == [1000]
    calls = [c[2] for c in fake.rest_calls]
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.99  # the retry waited for Retry-After: 1
    assert waited < 2.0


async def test_418_ban_blocks_every_request_until_retry_after(fake: FakeBinance) -> None:
    fake.rest_faults = [(418, {"Retry-After": "0.5"})]
    async with BinanceRestClient(fast_settings(fake)) as rest:
        trades = await rest.historical_trades("BTCUSDT", 1000, 10)
        assert trades == []
    gap = fake.rest_calls[1][2] - fake.rest_calls[0][2]
    assert gap >= 0.49


async def test_persistent_429_gives_a_clear_source_error(fake: FakeBinance) -> None:
    fake.rest_faults = [(429, {"Retry-After": "0"})] * 3
    async with BinanceRestClient(fast_settings(fake), max_attempts=3) as rest:
        with pytest.raises(SourceError, match=r"after 3 attempts.*HTTP 429"):
            await rest.historical_trades("BTCUSDT", 1000, 10)
    assert len(fake.rest_calls) == 3


async def test_server_errors_are_retried_with_backoff(fake: FakeBinance) -> None:
    await fake.trade(n=2, deliver=False)
    fake.rest_faults = [(503, {}), (500, {})]
    async with BinanceRestClient(fast_settings(fake)) as rest:
        trades = await rest.historical_trades("BTCUSDT", 1000, 10)
    assert [t.trade_id for t in trades] == [1000, 1001]
    assert len(fake.rest_calls) == 3


async def test_bad_request_fails_at_once_with_binance_message(fake: FakeBinance) -> None:
    async with BinanceRestClient(fast_settings(fake)) as rest:
        with pytest.raises(SourceError, match=r"HTTP 400: code -1121: Invalid symbol"):
            await rest.historical_trades("NOPEUSDT", 1, 10)
    assert len(fake.rest_calls) == 1


async def test_unreachable_server_raises_source_error_after_bounded_retries() -> None:
    fake = FakeBinance()
    fake.port = 9
    async with BinanceRestClient(fast_settings(fake), max_attempts=2) as rest:
        with pytest.raises(SourceError, match="after 2 attempts"):
            await rest.historical_trades("BTCUSDT", 1, 10)


async def test_used_weight_header_is_adopted_by_the_budget(fake: FakeBinance) -> None:
    fake.used_weight = 4000  # another process on this IP already spent most of the minute
    async with BinanceRestClient(fast_settings(fake)) as rest:
        await rest.historical_trades("BTCUSDT", 1000, 10)
        assert rest.budget.used >= 4025


async def test_shared_httpx_client_is_not_closed(fake: FakeBinance) -> None:
    async with httpx.AsyncClient() as client:
        rest = BinanceRestClient(fast_settings(fake), client, symbol_map=SymbolMap())
        await rest.aclose()
        assert not client.is_closed
