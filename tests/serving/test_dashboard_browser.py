"""The dashboard in headless Chromium (Playwright driving Debian's /usr/bin/chromium):
candles render, the symbol switch works, the alerts feed shows the replay's whale alert."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.serving.conftest import serving
from tests.serving.venues import TRADES, venues_data_dir

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
