"""KrakenRestClient against a local server speaking Kraken's REST `Trades` protocol."""

import time
from collections.abc import AsyncIterator

import pytest

from marketpipe.model.errors import SourceError
from marketpipe.sources.kraken.rest import KrakenRestClient
from marketpipe.sources.kraken.settings import KrakenSettings
from tests.sources.fake_kraken import FakeKraken

pytestmark = pytest.mark.integration


@pytest.fixture
async def kraken() -> AsyncIterator[FakeKraken]:
    server = await FakeKraken().start()
    try:
        yield server
    finally:
        await server.stop()


def settings(kraken: FakeKraken, **overrides: object) -> KrakenSettings:
    values: dict[str, object] = {
        "ws_url": kraken.ws_url,
        "rest_url": kraken.rest_url,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "rate_limit_pause_s": 0.2,
        "rest_timeout_s": 2.0,
    }
    values.update(overrides)
    return KrakenSettings.model_validate(values)


async def test_a_page_of_trades_maps_rows_exactly(kraken: FakeKraken) -> None:
    rows = kraken.add("XBTUSD", 3)
    async with KrakenRestClient(settings(kraken)) as rest:
        page = await rest.trades("BTC-USD", rows[0].time_ns - 1, 1000)
    assert kraken.rest_calls[-1] == {
        "pair": "XBTUSD",
        "count": "1000",
        "since": str(rows[0].time_ns - 1),
    }
    assert [(t.trade_id, t.price, t.qty, t.ts_event) for t in page.trades] == [
        (r.trade_id, float(r.price), 0.25, r.time_us) for r in rows
    ]
    assert [t.side for t in page.trades] == ["buy" if r.side == "b" else "sell" for r in rows]
    assert {t.symbol for t in page.trades} == {"BTC-USD"} and page.rows == 3
    assert page.last_ns == rows[-1].time_ns


# Requests are paced at one a second (Kraken's public limit), so pauses are checked above it.


async def test_kraken_error_array_rate_limit_is_waited_out_then_retried(kraken: FakeKraken) -> None:
    kraken.add("XBTUSD", 2)
    kraken.rest_faults = [("error", ["EGeneral:Too many requests"])]
    async with KrakenRestClient(settings(kraken, rate_limit_pause_s=1.5, backoff_max_s=5)) as rest:
        started = time.monotonic()
        page = await rest.trades("BTC-USD", None, 1000)
        waited = time.monotonic() - started
    assert len(page.trades) == 2 and len(kraken.rest_calls) == 2
    assert waited >= 1.45  # the pause, not just the 1 s pacing


async def test_repeated_rate_limits_double_the_pause_up_to_the_cap(kraken: FakeKraken) -> None:
    kraken.rest_faults = [("error", ["EAPI:Rate limit exceeded"])] * 3
    async with KrakenRestClient(
        settings(kraken, rate_limit_pause_s=0.6, backoff_max_s=1.0)
    ) as rest:
        started = time.monotonic()
        await rest.trades("BTC-USD", None, 10)
        waited = time.monotonic() - started
    assert len(kraken.rest_calls) == 4
    assert 0.6 + 1.0 + 1.0 - 0.1 <= waited < 6  # 0.6, then 1.2 capped at 1.0, then 1.0


async def test_http_429_honours_retry_after(kraken: FakeKraken) -> None:
    kraken.add("XBTUSD")
    kraken.rest_faults = [("retry_after", 1.5)]
    async with KrakenRestClient(settings(kraken, rate_limit_pause_s=0.01)) as rest:
        started = time.monotonic()
        await rest.trades("BTC-USD", None, 10)
    assert time.monotonic() - started >= 1.45
    assert len(kraken.rest_calls) == 2


async def test_throttled_until_a_time_waits_until_then(kraken: FakeKraken) -> None:
    kraken.add("XBTUSD")
    until = time.time() + 1.6
    kraken.rest_faults = [("error", [f"EService: Throttled: {until:.3f}"])]
    async with KrakenRestClient(settings(kraken, rate_limit_pause_s=0.01)) as rest:
        await rest.trades("BTC-USD", None, 10)
    # Until that wall-clock time, however long the set-up took (a loaded machine is slow).
    assert time.time() >= until - 0.05


async def test_5xx_and_unavailable_are_retried(kraken: FakeKraken) -> None:
    kraken.add("XBTUSD")
    kraken.rest_faults = [("status", 502), ("error", ["EService:Unavailable"]), ("status", 503)]
    async with KrakenRestClient(settings(kraken)) as rest:
        page = await rest.trades("BTC-USD", None, 10)
    assert len(page.trades) == 1 and len(kraken.rest_calls) == 4


async def test_persistent_5xx_fails_after_bounded_attempts(kraken: FakeKraken) -> None:
    kraken.rest_faults = [("status", 500)] * 10
    async with KrakenRestClient(settings(kraken), max_attempts=3) as rest:
        with pytest.raises(SourceError, match="after 3 attempts"):
            await rest.trades("BTC-USD", None, 10)
    assert len(kraken.rest_calls) == 3


async def test_4xx_and_query_errors_fail_at_once_with_a_clear_message(kraken: FakeKraken) -> None:
    async with KrakenRestClient(settings(kraken)) as rest:
        kraken.rest_faults = [("status", 403)]
        with pytest.raises(SourceError, match="HTTP 403"):
            await rest.trades("BTC-USD", None, 10)
        with pytest.raises(SourceError, match="EQuery:Unknown asset pair"):
            await rest.trades("FOO-USD", None, 10)
    assert len(kraken.rest_calls) == 2


async def test_requests_are_paced_at_the_public_limit(kraken: FakeKraken) -> None:
    async with KrakenRestClient(settings(kraken, rest_requests_per_second=0.5)) as rest:
        started = time.monotonic()
        for _ in range(3):
            await rest.trades("BTC-USD", None, 1)
    assert time.monotonic() - started >= 2 * 2.0 * 0.95  # three requests, two seconds apart


async def test_unreachable_server_is_a_source_error_after_retries() -> None:
    s = KrakenSettings(rest_url="http://127.0.0.1:9", backoff_initial_s=0.01, backoff_max_s=0.02)
    async with KrakenRestClient(s, max_attempts=2) as rest:
        with pytest.raises(SourceError, match="after 2 attempts"):
            await rest.trades("BTC-USD", None, 1)
