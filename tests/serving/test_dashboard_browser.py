"""The dashboard in headless Chromium (Playwright driving Debian's /usr/bin/chromium):
candles render, the symbol switch works, the alerts feed shows the replay's whale alert, the
watchlist shows each coin's market cap and rank."""

import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page

from marketpipe.model.records import MarketSnapshot
from marketpipe.serving.app import create_app
from marketpipe.serving.backend import embedded_backend
from marketpipe.serving.settings import ApiSettings
from marketpipe.storage.embedded import EmbeddedStore
from tests.serving.conftest import healthy, serving
from tests.serving.venues import T0, TRADES, venues_data_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dashboard_url(two_symbol_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(two_symbol_dir, tmp_path_factory.mktemp("serve-dashboard")) as base:
        yield base


def _shot(page: Page, name: str, tmp_path: Path) -> Path:
    target = Path(os.environ.get("MARKETPIPE_SCREENSHOTS", tmp_path)) / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))
    return target


def test_dashboard_renders_switches_symbols_and_shows_the_whale_alert(
    browser: Browser, dashboard_url: str, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(dashboard_url, wait_until="networkidle")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)

    # The chart: BTCUSDT (the busiest symbol) with its 12 candles drawn on canvases.
    chart = page.locator("[data-testid=chart]")
    assert chart.get_attribute("data-symbol") == "BTCUSDT"
    assert int(chart.get_attribute("data-candles") or 0) == 12
    assert page.locator("[data-testid=chart] canvas").count() >= 2  # price and volume panes
    bars = page.evaluate("window.dashboard.candleSeries.data().length")
    assert bars == 12

    # The watchlist has both symbols with last price and 24 h change.
    symbols = page.locator("[data-testid=symbols] li")
    assert symbols.count() == 2
    assert "61,602.02" in symbols.nth(0).inner_text()
    assert page.locator("#title-symbol").inner_text() == "BTCUSDT"

    # The alerts feed shows the replay's whale trade.
    whale = page.locator("[data-testid=alerts] li[data-kind=whale_trade]")
    assert whale.count() == 1
    assert "BTC-USDT" in whale.inner_text()
    _shot(page, "dashboard-btc", tmp_path)

    # Switch symbol: the chart reloads with ETHUSDT's candles.
    page.locator("[data-testid=symbols] li[data-symbol=ETHUSDT]").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=chart]').dataset.symbol === 'ETHUSDT'"
    )
    assert page.locator("#title-symbol").inner_text() == "ETHUSDT"
    eth_bars = page.evaluate("window.dashboard.candleSeries.data().length")
    assert eth_bars >= 11
    first_open = page.evaluate("window.dashboard.candleSeries.data()[0].open")
    assert 2400 < first_open < 2800

    # Another interval: 5m bars of the same symbol.
    page.locator("[data-testid=intervals] button[data-interval='5m']").click()
    page.wait_for_function("window.dashboard.candleSeries.data().length < 5")
    _shot(page, "dashboard-eth-5m", tmp_path)
    assert errors == []
    page.close()


@pytest.fixture(scope="module")
def venues_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("serve-venues-dashboard")
    with serving(venues_data_dir(root), root) as base:
        yield base


def test_the_dashboard_overlays_the_asset_on_the_other_venues(
    browser: Browser, venues_url: str, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{venues_url}/?symbol=BTCUSDT", wait_until="networkidle")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    chart = page.locator("[data-testid=chart]")
    assert chart.get_attribute("data-overlay") == ""  # off until asked for

    page.locator("[data-testid=venues-toggle]").click()
    page.wait_for_function("document.querySelector('[data-testid=chart]').dataset.overlay")
    # Binance's BTC-USDT is the chart; Coinbase's and Kraken's BTC-USD are the lines.
    assert chart.get_attribute("data-overlay") == "coinbase:2,kraken:2"
    lines = page.evaluate(
        "Object.fromEntries([...window.dashboard.overlaySeries].map("
        "([venue, s]) => [venue, s.data().map((p) => p.value)]))"
    )
    closes = {ex: [] for ex, _, _ in TRADES}
    for exchange, symbol, trades in TRADES:
        if symbol == "BTC-USD":  # the last trade of each minute is its close
            for minute in (0, 1):
                inside = [p for p, _, s in trades if s // 60 == minute]
                closes[exchange].append(inside[-1])
    assert lines == {"coinbase": closes["coinbase"], "kraken": closes["kraken"]}
    legend = page.locator("[data-testid=overlay-legend] span")
    assert legend.count() == 2 and "kraken 61,000.00" in legend.nth(1).inner_text()
    _shot(page, "dashboard-venues", tmp_path)

    page.locator("[data-testid=venues-toggle]").click()  # and off again
    page.wait_for_function("!document.querySelector('[data-testid=chart]').dataset.overlay")
    assert page.evaluate("window.dashboard.overlaySeries.size") == 0
    assert errors == []
    page.close()


def _snapshot(asset: str, vs: str, cap: float | None, rank: int | None) -> MarketSnapshot:
    return MarketSnapshot(
        source="coingecko", asset=asset, vs_currency=vs, price=61_000.0, market_cap=cap,
        fully_diluted_valuation=None, volume_24h=None, circulating_supply=None,
        market_cap_rank=rank, ts_source=T0, ts_recv=T0,
    )  # fmt: skip


@dataclasses.dataclass
class MarketServer:
    url: str
    # What the backend's `market` answers; the test replaces it to see the watchlist refresh.
    snapshots: list[MarketSnapshot]


@pytest.fixture(scope="module")
def market_server(
    two_symbol_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MarketServer]:
    """The API in-process over a copy of the two-symbol data dir, with a `market` of known
    snapshots (the pipeline's own backend fills it from the warm store's market_snapshots)."""
    data_dir = shutil.copytree(two_symbol_dir, tmp_path_factory.mktemp("market") / "data")
    store = EmbeddedStore(data_dir, read_only=True)
    held = MarketServer("", [
        _snapshot("BTC", "EUR", 9.99e12, 1),  # not dollars: the watchlist reads USD
        _snapshot("BTC", "USD", 1_234_567_890_123.0, 1),
    ])  # fmt: skip
    backend = dataclasses.replace(embedded_backend(store, healthy), market=lambda: held.snapshots)
    app = create_app(backend, ApiSettings(rate_limit="100000/minute"))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
        time.sleep(0.02)
    held.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    yield held
    server.should_exit = True
    thread.join(10)
    store.close()


def _cells(page: Page, symbol: str) -> tuple[str, str]:
    row = page.locator(f"[data-testid=symbols] li[data-symbol={symbol}]")
    return (
        row.locator("[data-testid=market-cap]").inner_text(),
        row.locator("[data-testid=market-rank]").inner_text(),
    )


def test_the_watchlist_shows_market_cap_and_rank_and_a_dash_when_unknown(
    browser: Browser, market_server: MarketServer, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(market_server.url, wait_until="networkidle")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    # BTC's dollar snapshot (not EUR's); ETH has none.
    assert _cells(page, "BTCUSDT") == ("$1.23T", "#1")
    assert _cells(page, "ETHUSDT") == ("—", "—")
    _shot(page, "dashboard-market-cap", tmp_path)

    # The next watchlist refresh (the 15 s poll's own function) reads the new snapshots.
    market_server.snapshots = [
        _snapshot("BTC", "USD", 456_700_000_000.0, 2),
        _snapshot("ETH", "USD", 312_345_678_901.0, 3),
    ]
    time.sleep(1.1)  # the API's read cache lives 1 s
    page.evaluate("window.dashboard.loadTickers()")
    page.wait_for_function(
        "document.querySelector('[data-symbol=ETHUSDT] [data-testid=market-cap]')"
        ".textContent !== '—'"
    )
    assert _cells(page, "BTCUSDT") == ("$456.7B", "#2")
    assert _cells(page, "ETHUSDT") == ("$312.3B", "#3")

    # Units at their boundaries: rounding carries into the next unit.
    formatted = page.evaluate(
        "[999.96e9, 99.996e9, 99.994e9, 12345678, null].map(window.dashboard.marketCap)"
    )
    assert formatted == ["$1.00T", "$100.0B", "$99.99B", "$12.35M", "—"]
    assert errors == []
    page.close()
