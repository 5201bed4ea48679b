"""Acceptance: replay the two recorded BTCUSDT files, run a real `marketpipe serve`, and check
its Binance-compatible and native answers against SQL over the raw trade frames."""

import re
from typing import Any

import httpx
import pytest

from harness.reference import raw_trades, reference_candles
from tests.serving.conftest import RECORDED

DECIMAL = re.compile(r"^-?\d+\.\d{8}$")
WHALE_TRADE_ID = 3735696283

pytestmark = pytest.mark.integration


def sql_klines(minutes: int) -> list[tuple[Any, ...]]:
    """Binance kline fields of the SQL reference candles over the raw frames."""
    width = 60_000 * minutes
    return [
        (c.open_ms, c.open, c.high, c.low, c.close, c.volume, c.open_ms + width - 1,
         c.quote_volume, c.trades, c.taker_buy_volume, c.taker_buy_quote_volume)
        for c in reference_candles(raw_trades(RECORDED), minutes)
    ]  # fmt: skip


def assert_binance_rows_match(rows: list[list[Any]], expected: list[tuple[Any, ...]]) -> None:
    assert len(rows) == len(expected)
    for row, ref in zip(rows, expected, strict=True):
        # Binance's exact shape: 12 fields; times and count as integers, the rest as decimal
        # strings, and the ignored last field "0".
        assert len(row) == 12
        assert [type(v) for v in row] == [
            int,
            str,
            str,
            str,
            str,
            str,
            int,
            str,
            int,
            str,
            str,
            str,
        ]
        assert all(DECIMAL.match(row[i]) for i in (1, 2, 3, 4, 5, 7, 9, 10)), row
        assert row[11] == "0"
        assert row[0] == ref[0] and row[6] == ref[6] and row[8] == ref[8]
        # Prices are trade prices: exact. Sums: equal to their printed 8 decimals.
        assert [row[i] for i in (1, 2, 3, 4)] == [f"{ref[i]:.8f}" for i in (1, 2, 3, 4)]
        for i in (5, 7, 9, 10):
            assert float(row[i]) == pytest.approx(ref[i], abs=2e-8, rel=1e-12)


def test_klines_1m_are_the_12_reference_candles_in_binance_row_format(served: str) -> None:
    response = httpx.get(
        f"{served}/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1000},
    )
    assert response.status_code == 200
    rows = response.json()
    expected = sql_klines(1)
    assert len(expected) == 12  # the data README's fact
    assert_binance_rows_match(rows, expected)
    assert rows[0][1] == "61837.63000000" and rows[-1][4] == "61602.02000000"


def test_klines_5m_are_correct_merges(served: str) -> None:
    rows = httpx.get(
        f"{served}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "5m"}
    ).json()
    assert_binance_rows_match(rows, sql_klines(5))
    assert sum(r[8] for r in rows) == 19_904


def test_ui_klines_and_time_bounds_follow_binance(served: str) -> None:
    full = httpx.get(
        f"{served}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"}
    ).json()
    ui = httpx.get(
        f"{served}/api/v3/uiKlines", params={"symbol": "BTCUSDT", "interval": "1m"}
    ).json()
    assert ui == full
    newest = httpx.get(
        f"{served}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 3}
    ).json()
    assert newest == full[-3:]
    window = httpx.get(
        f"{served}/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "startTime": full[2][0],
                "endTime": full[5][0], "limit": 10},
    ).json()  # fmt: skip
    assert window == full[2:6]


def test_native_klines_agree_with_binance_klines(served: str) -> None:
    binance_rows = httpx.get(
        f"{served}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"}
    ).json()
    response = httpx.get(f"{served}/api/v1/analytics/klines/BTCUSDT", params={"interval": "1m"})
    assert response.status_code == 200
    assert response.headers["X-Marketpipe-Tiers"] == "warm"
    native = response.json()["candles"]
    assert len(native) == len(binance_rows) == 12
    for n, b in zip(native, binance_rows, strict=True):
        assert n["is_final"] is True and n["revision"] == 0
        assert [f"{n[k]:.8f}" for k in ("open", "high", "low", "close", "volume")] == b[1:6]
        assert n["trade_count"] == b[8]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ({"symbol": "BTC$USDT", "interval": "1m"}, -1100),
        ({"interval": "1m"}, -1102),
        ({"symbol": "", "interval": "1m"}, -1105),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"}, -1100),
    ],
)
def test_bad_parameters_get_binance_error_bodies(
    served: str, params: dict[str, str], code: int
) -> None:
    response = httpx.get(f"{served}/api/v3/klines", params=params)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "msg"}
    assert body["code"] == code and body["msg"]


def test_trades_ticker_and_book_match_the_recording(served: str) -> None:
    raw = sorted(raw_trades(RECORDED), key=lambda r: (r[5], r[1]))
    trades = httpx.get(f"{served}/api/v3/trades", params={"symbol": "BTCUSDT", "limit": 5}).json()
    assert [t["id"] for t in trades] == [r[1] for r in raw[-5:]]
    assert trades[-1]["price"] == f"{raw[-1][2]:.8f}"
    assert trades[-1]["isBuyerMaker"] is raw[-1][4]
    ticker = httpx.get(f"{served}/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"}).json()
    assert ticker["count"] == 19_904
    assert ticker["firstId"] == raw[0][1] and ticker["lastId"] == raw[-1][1]
    assert ticker["openPrice"] == "61837.63000000" and ticker["lastPrice"] == "61602.02000000"
    assert float(ticker["volume"]) == pytest.approx(sum(r[3] for r in raw), abs=1e-6)
    price = httpx.get(f"{served}/api/v3/ticker/price", params={"symbol": "BTCUSDT"}).json()
    assert price == {"symbol": "BTCUSDT", "price": "61602.02000000"}
    book = httpx.get(f"{served}/api/v3/ticker/bookTicker", params={"symbol": "BTCUSDT"}).json()
    assert float(book["bidPrice"]) <= float(book["askPrice"])
    depth = httpx.get(f"{served}/api/v3/depth", params={"symbol": "BTCUSDT"}).json()
    assert depth["bids"][0] == [book["bidPrice"], book["bidQty"]]
    agg = httpx.get(f"{served}/api/v3/aggTrades", params={"symbol": "BTCUSDT"}).json()
    assert len(agg) == 500 and agg[-1]["l"] == raw[-1][1]
    assert all(a["f"] <= a["l"] for a in agg)
    info = httpx.get(f"{served}/api/v3/exchangeInfo").json()
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT"]
    assert httpx.get(f"{served}/api/v3/ping").json() == {}


def test_whale_alert_and_market_views(served: str) -> None:
    whales = httpx.get(f"{served}/api/v1/analytics/alerts/whale-alerts").json()
    assert len(whales) == 1
    assert f'"trade_id":{WHALE_TRADE_ID}' in whales[0]["details"]
    realtime = httpx.get(f"{served}/api/v1/market/realtime").json()
    assert realtime[0]["native_symbol"] == "BTCUSDT" and realtime[0]["trades_24h"] == 19_904
    health = httpx.get(f"{served}/api/v1/market/ticker-health").json()
    assert health[0]["completeness"] == 1.0
    top = httpx.get(f"{served}/api/v1/market/top-by-trades", params={"limit": 1}).json()
    assert top[0]["symbol"] == "BTC-USDT"
    counts = httpx.get(
        f"{served}/api/v1/analytics/trades-count", params={"symbol": "BTCUSDT", "interval": "1h"}
    ).json()
    assert sum(c["trade_count"] for c in counts) == 19_904


def test_a_real_binance_client_library_works_against_our_server(served: str) -> None:
    from binance.spot import Spot  # binance-connector, Binance's own Python client

    client = Spot(base_url=served, timeout=30)
    klines = client.klines("BTCUSDT", "1m", limit=1000)
    assert len(klines) == 12
    assert float(klines[0][1]) == 61837.63
    trades = client.trades("BTCUSDT", limit=10)
    assert len(trades) == 10 and trades[-1]["id"] == 3735703162
    ticker = client.ticker_24hr("BTCUSDT")
    assert ticker["symbol"] == "BTCUSDT" and float(ticker["lastPrice"]) == 61602.02
    assert client.time()["serverTime"] > 0
