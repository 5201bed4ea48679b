"""Back-fill by trade id over Kraken's time-paged `Trades`, against the fake's REST."""

from collections.abc import AsyncIterator

import pytest

from marketpipe.sources.kraken.history import KrakenTradeHistory, TimeAnchors
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


@pytest.fixture
async def rest(kraken: FakeKraken) -> AsyncIterator[KrakenRestClient]:
    settings = KrakenSettings(rest_url=kraken.rest_url, backoff_initial_s=0.01)
    # Tests only: faster than Kraken's 1 request/s (the validated field refuses more).
    async with KrakenRestClient(
        settings.model_copy(update={"rest_requests_per_second": 500})
    ) as client:
        yield client


async def backfill_all(history: KrakenTradeHistory, from_id: int, limit: int) -> list[int]:
    """What the back-filler does: pages from `from_id` until a short page."""
    ids: list[int] = []
    next_id = from_id
    while True:
        page = await history.trades_from("BTC-USD", next_id, limit)
        ids.extend(t.trade_id for t in page)
        if len(page) < limit:
            return ids
        next_id = page[-1].trade_id + 1


async def test_paging_by_time_returns_every_id_once_in_order(
    kraken: FakeKraken, rest: KrakenRestClient
) -> None:
    rows = kraken.add("XBTUSD", 2500)
    anchors = TimeAnchors()
    anchors.note("BTC-USD", rows[99].trade_id, rows[99].time_ns - 1)  # as a live trade would
    history = KrakenTradeHistory(rest, anchors, page_size=1000)
    ids = await backfill_all(history, rows[100].trade_id, 1000)
    assert ids == [r.trade_id for r in rows[100:]]
    # 2400 trades at 1000 a call: each call starts at its first id, pages overlap by a row.
    assert len(kraken.rest_calls) <= 5


async def test_trades_sharing_a_page_boundary_timestamp_are_neither_lost_nor_doubled(
    kraken: FakeKraken, rest: KrakenRestClient
) -> None:
    rows = [row for _ in range(40) for row in kraken.add("XBTUSD", 3, same_time=True)]
    anchors = TimeAnchors()
    anchors.note("BTC-USD", rows[0].trade_id, rows[0].time_ns - 1)
    history = KrakenTradeHistory(rest, anchors, page_size=5)  # boundaries fall inside groups
    ids = await backfill_all(history, rows[0].trade_id, 4)
    assert ids == [r.trade_id for r in rows]


async def test_a_restart_finds_where_an_unremembered_id_is_by_searching_back(
    kraken: FakeKraken, rest: KrakenRestClient
) -> None:
    rows = kraken.add("XBTUSD", 3000)  # 1 ms apart: 3 s of trades
    history = KrakenTradeHistory(rest, TimeAnchors(), page_size=1000, locate_step_s=0.1)
    page = await history.trades_from("BTC-USD", rows[150].trade_id, 10)
    assert [t.trade_id for t in page] == [r.trade_id for r in rows[150:160]]
    assert page[0].ts_event == rows[150].time_us and page[0].price == float(rows[150].price)
    assert len(kraken.rest_calls) <= 20  # latest page, doubling steps back, halving, the page


async def test_an_id_within_the_latest_page_needs_no_search(
    kraken: FakeKraken, rest: KrakenRestClient
) -> None:
    rows = kraken.add("XBTUSD", 50)
    history = KrakenTradeHistory(rest, TimeAnchors(), page_size=1000)
    page = await history.trades_from("BTC-USD", rows[10].trade_id, 1000)
    assert [t.trade_id for t in page] == [r.trade_id for r in rows[10:]]
    assert "since" not in kraken.rest_calls[0] and len(kraken.rest_calls) == 2


async def test_the_present_is_an_empty_answer(kraken: FakeKraken, rest: KrakenRestClient) -> None:
    rows = kraken.add("XBTUSD", 5)
    anchors = TimeAnchors()
    anchors.note("BTC-USD", rows[-1].trade_id, rows[-1].time_ns - 1)
    history = KrakenTradeHistory(rest, anchors, page_size=1000)
    assert await history.trades_from("BTC-USD", rows[-1].trade_id + 1, 1000) == []


def test_anchors_give_the_nearest_known_id_at_or_below() -> None:
    anchors = TimeAnchors(per_symbol=8)
    for trade_id in (10, 30, 20):
        anchors.note("BTC-USD", trade_id, trade_id * 100)
    assert anchors.at_or_before("BTC-USD", 9) is None
    assert [anchors.at_or_before("BTC-USD", i) for i in (10, 19, 20, 29, 99)] == [
        1000,
        1000,
        2000,
        2000,
        3000,
    ]
    anchors.note("BTC-USD", 20, 1500)  # an earlier `since` for a known id is kept
    assert anchors.at_or_before("BTC-USD", 20) == 1500
    for trade_id in range(31, 40):  # past capacity: the oldest quarter is forgotten
        anchors.note("BTC-USD", trade_id, trade_id * 100)
    assert anchors.at_or_before("BTC-USD", 15) is None
    assert anchors.at_or_before("ETH-USD", 15) is None


async def test_a_page_all_within_one_microsecond_moves_on_by_krakens_cursor(
    kraken: FakeKraken, rest: KrakenRestClient
) -> None:
    # Seven trades in one µs and pages of five: the time cannot split them, Kraken's ns
    # cursor must. The fake's cursor (like a coarse one) skips the two left over, so they
    # are missing, never invented or doubled, and paging goes on instead of looping.
    before = kraken.add("XBTUSD", 1)
    burst = kraken.add("XBTUSD", 7, same_time=True)
    after = kraken.add("XBTUSD", 3)
    anchors = TimeAnchors()
    anchors.note("BTC-USD", before[0].trade_id, before[0].time_ns - 1)
    history = KrakenTradeHistory(rest, anchors, page_size=5)
    ids = await backfill_all(history, burst[0].trade_id, 100)
    assert ids == [r.trade_id for r in burst[:5] + after]
    assert [c["since"] for c in kraken.rest_calls][-1] == str(burst[0].time_ns)
