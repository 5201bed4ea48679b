"""The `/coins/markets` parser on bodies shaped as CoinGecko documents them.

Provenance: there is no CoinGecko recording in ../shared/data. The fixture below follows the
documented response schema of `GET /api/v3/coins/markets` (docs.coingecko.com, "Coins List
with Market Data"; the 2020-04-23 changelog example for `atl*`, `roi: null` and
`last_updated` with milliseconds), every field present, figures made up; it is not a
recording.
"""

from datetime import UTC, datetime

import msgspec
import pytest

from marketpipe.model.errors import FrameError
from marketpipe.sources.coingecko.markets import SOURCE, parse_markets, time_us

BITCOIN = {
    "id": "bitcoin",
    "symbol": "btc",
    "name": "Bitcoin",
    "image": "https://assets.coingecko.com/coins/images/1/large/bitcoin.png?1696501400",
    "current_price": 42854,
    "market_cap": 840911893048,
    "market_cap_rank": 1,
    "fully_diluted_valuation": 900090912210,
    "total_volume": 14271358129,
    "high_24h": 43458,
    "low_24h": 42612,
    "price_change_24h": -408.17,
    "price_change_percentage_24h": -0.94352,
    "market_cap_change_24h": -7434417560.9375,
    "market_cap_change_percentage_24h": -0.87634,
    "circulating_supply": 19619968.0,
    "total_supply": 21000000.0,
    "max_supply": 21000000.0,
    "ath": 69045,
    "ath_change_percentage": -38.01241,
    "ath_date": "2021-11-10T14:24:11.849Z",
    "atl": 67.81,
    "atl_change_percentage": 63017.26399,
    "atl_date": "2013-07-06T00:00:00.000Z",
    "roi": None,
    "last_updated": "2024-02-05T07:23:50.583Z",
}
# A thinly covered coin: CoinGecko leaves what it does not know null.
OBSCURE = {
    **BITCOIN,
    "id": "some-token",
    "symbol": "stk",
    "name": "Some Token",
    "current_price": 0.00012345,
    "market_cap": None,
    "market_cap_rank": None,
    "fully_diluted_valuation": None,
    "total_volume": 0,
    "circulating_supply": None,
    "total_supply": None,
    "max_supply": None,
    "roi": {"times": 1.5, "currency": "usd", "percentage": 150.0},
    "last_updated": "2024-02-05T07:20:01.000Z",
}


def body(*rows: object) -> bytes:
    return msgspec.json.encode(list(rows))


def test_documented_row_becomes_a_snapshot_with_every_figure() -> None:
    parsed = parse_markets(body(BITCOIN), "usd", recv_us=5)
    assert parsed.dead_letters == []
    [snap] = parsed.snapshots
    assert snap.source == SOURCE == "coingecko"
    assert snap.asset == "BTC" and snap.vs_currency == "USD"
    assert snap.price == 42854.0 and isinstance(snap.price, float)
    assert snap.market_cap == 840911893048
    assert snap.fully_diluted_valuation == 900090912210
    assert snap.volume_24h == 14271358129
    assert snap.circulating_supply == 19619968.0
    assert snap.market_cap_rank == 1
    expected = datetime(2024, 2, 5, 7, 23, 50, 583000, tzinfo=UTC)
    assert snap.ts_source == int(expected.timestamp()) * 1_000_000 + 583_000
    assert snap.ts_recv == 5


def test_null_figures_stay_none_and_a_zero_volume_stays_zero() -> None:
    [snap] = parse_markets(body(OBSCURE), "usd", recv_us=1).snapshots
    assert snap.asset == "STK"
    assert snap.market_cap is None
    assert snap.fully_diluted_valuation is None
    assert snap.circulating_supply is None
    assert snap.market_cap_rank is None
    assert snap.volume_24h == 0.0  # known to be zero, not unknown


def test_one_bad_row_is_dead_lettered_and_the_others_still_parse() -> None:
    no_price = {**BITCOIN, "id": "ethereum", "symbol": "eth", "current_price": None}
    wrong_type = {**BITCOIN, "id": "solana", "symbol": "sol", "market_cap": "big"}
    parsed = parse_markets(body(BITCOIN, no_price, wrong_type, 7, OBSCURE), "usd", recv_us=9)
    assert [s.asset for s in parsed.snapshots] == ["BTC", "STK"]
    assert len(parsed.dead_letters) == 3
    errors = [d.error for d in parsed.dead_letters]
    assert "ethereum" in errors[0] and "current_price" in errors[0]
    assert "market_cap" in errors[1]
    assert all(d.source == "coingecko" and d.ts == 9 for d in parsed.dead_letters)
    assert msgspec.json.decode(parsed.dead_letters[0].raw)["id"] == "ethereum"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"status":{"error_code":429,"error_message":"rate limited"}}',  # an error object
        b'[{"id":"bitcoin","symbol":"btc","current_price":4',  # truncated
        b"<html>502 Bad Gateway</html>",
        b"",
    ],
)
def test_a_body_that_is_no_array_is_one_dead_letter_with_the_raw_bytes(raw: bytes) -> None:
    parsed = parse_markets(raw, "usd", recv_us=3)
    assert parsed.snapshots == []
    [dead] = parsed.dead_letters
    assert dead.raw == raw and dead.source == "coingecko"
    assert "not a JSON array" in dead.error


def test_an_empty_array_is_no_snapshot_and_no_dead_letter() -> None:
    parsed = parse_markets(b"[]", "usd")
    assert parsed.snapshots == [] and parsed.dead_letters == []


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"last_updated": None}, "last_updated"),
        ({"last_updated": "yesterday"}, "ISO-8601"),
        ({"last_updated": "2024-02-05T07:23:50"}, "time zone"),
        ({"current_price": -1.0}, "current_price"),
        ({"symbol": "  "}, "empty symbol"),
        ({"market_cap_rank": 1.5}, "market_cap_rank"),
    ],
)
def test_rows_without_what_a_snapshot_needs_are_dead_lettered(
    bad: dict[str, object], why: str
) -> None:
    parsed = parse_markets(body({**BITCOIN, **bad}), "usd")
    assert parsed.snapshots == []
    assert why in parsed.dead_letters[0].error


def test_time_boundaries_are_exact_to_the_microsecond() -> None:
    assert time_us("1970-01-01T00:00:00.000Z") == 0
    assert time_us("1969-12-31T23:59:59.999999Z") == -1
    assert time_us("2024-02-05T07:23:50.583Z") == 1_707_117_830_583_000
    assert time_us("2024-02-05T08:23:50.583+01:00") == 1_707_117_830_583_000
    with pytest.raises(FrameError):
        time_us("2024-02-30T00:00:00Z")
