"""Finnhub frames from a synthetic market of stocks: trade batches and pings.

- Trades go out as `{"data":[{"c":[...],"p":..,"s":"AAPL","t":<ms>,"v":..}],"type":"trade"}`,
  one message per symbol per poll with at most `batch_max` trades (a burst spans several
  messages, so one millisecond's trades can straddle two frames of one poll; a poll takes
  whole milliseconds only, so no millisecond straddles two polls). `c`, the trade conditions,
  are drawn per trade from a few real codes, sometimes null or absent.
- `{"type":"ping"}` every `ping_every_us` to every authenticated client.
- With `hours`, trades outside the regular session are never sent nor kept: the market
  moves on while closed, and the tape (the ground truth) has nothing for closed hours.
"""

from __future__ import annotations

from dataclasses import replace

from marketpipe.model.records import Trade
from marketpipe.model.symbols import equity_ticker
from marketpipe.simulator.columns import UNITS, TradeColumns
from marketpipe.simulator.feed import Frame
from marketpipe.simulator.finnhub.hours import MarketHours
from marketpipe.simulator.formats import mix64, number
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.symbols import SECONDS_PER_YEAR, SymbolSpec, symbol_spec
from marketpipe.simulator.tape import TradeTape, split_by_symbol, tapes_truth

EXCHANGE = "finnhub"
PING_TOPIC = "ping"
PING = b'{"type":"ping"}'
_CONDITIONS = ('"c":["1","12"],', '"c":["1"],', '"c":["1","8","24","12"],', '"c":null,', "")


def topic(ticker: str) -> str:
    return f"trade:{ticker}"


# ticker -> (USD price, share of the market's trades, annualized volatility), mid-2024.
_STOCKS: dict[str, tuple[float, float, float]] = {
    "AAPL": (190.0, 1.0, 0.28),
    "MSFT": (420.0, 0.8, 0.25),
}
_STOCK_VOL = 0.35  # an unknown ticker's annualized volatility


def stock_spec(ticker: str, seed: int = 0) -> SymbolSpec:
    """A stock as the market trades it: `AAPL-USD`, spelt `AAPL`, cent ticks, whole shares
    (so a $150 order is one share, and equal trades in one millisecond are common)."""
    ticker = equity_ticker(ticker)
    spec = symbol_spec(f"{ticker}-USD", seed)
    price, weight, annual = _STOCKS.get(ticker, (spec.start_price, spec.weight, _STOCK_VOL))
    return replace(
        spec,
        native=ticker,
        tick_units=UNITS // 100,
        step_units=UNITS,
        start_price=max(1.0, round(price * 100) / 100),
        weight=weight,
        vol_per_sqrt_s=annual / SECONDS_PER_YEAR**0.5,
    )


def stock_market(
    tickers: list[str], trades_per_second: float, seed: int, start_us: int | None = None
) -> SyntheticMarket:
    """A synthetic market of `tickers` whose trades say exchange "finnhub" (ms times)."""
    specs = [stock_spec(t, seed) for t in tickers]
    return SyntheticMarket(
        [s.symbol for s in specs],
        trades_per_second,
        seed,
        start_us,
        exchange=EXCHANGE,
        specs=specs,
        time_step_us=1000,
    )


def trade_item(ticker: str, price: int, qty: int, ts_us: int, trade_id: int) -> str:
    conditions = _CONDITIONS[mix64(trade_id) % len(_CONDITIONS)]
    return (
        f'{{{conditions}"p":{number(price).removesuffix(".0")},"s":"{ticker}",'
        f'"t":{ts_us // 1000},"v":{qty // UNITS}}}'
    )


def trade_message(items: list[str]) -> bytes:
    return f'{{"data":[{",".join(items)}],"type":"trade"}}'.encode()


class FinnhubFeed:
    def __init__(
        self,
        market: SyntheticMarket,
        *,
        hours: MarketHours | None = None,
        batch_max: int = 50,
        ping_every_us: int = 10_000_000,
        tape_per_symbol: int = 1_000_000,
    ) -> None:
        self.market = market
        self.hours = hours
        self.batch_max = max(1, batch_max)
        self.ping_every_us = ping_every_us
        self._tapes = {s.symbol: TradeTape(tape_per_symbol) for s in market.specs}
        self._by_ticker = {s.native: s for s in market.specs}
        self._next_ping_us: int | None = None

    @property
    def specs(self) -> list[SymbolSpec]:
        return self.market.specs

    def spec(self, ticker: str) -> SymbolSpec | None:
        return self._by_ticker.get(ticker)

    def poll(self, now_us: int) -> list[Frame]:
        out: list[Frame] = []
        # Only whole milliseconds: one ms of a symbol is never split over two polls, so two
        # frames are never byte-identical (the parser takes such frames for one).
        cols = self.market.advance_columns(now_us - now_us % 1000 - 1)
        if len(cols) and self.hours is not None:
            cols = cols.take(self.hours.mask(cols.ts_us))
        if len(cols):
            for index, part in split_by_symbol(cols).items():
                spec = self.market.specs[index]
                out.extend(self._messages(spec, part))
                self._tapes[spec.symbol].append(part)
        if self._next_ping_us is None:
            self._next_ping_us = now_us + self.ping_every_us
        if now_us >= self._next_ping_us:
            self._next_ping_us = now_us + self.ping_every_us
            out.append((PING_TOPIC, PING, None))
        return out

    def _messages(self, spec: SymbolSpec, part: TradeColumns) -> list[Frame]:
        rows = list(
            zip(
                part.trade_id.tolist(),
                part.price_units.tolist(),
                part.qty_units.tolist(),
                part.ts_us.tolist(),
                strict=True,
            )
        )
        out: list[Frame] = []
        for start in range(0, len(rows), self.batch_max):
            chunk = rows[start : start + self.batch_max]
            items = [trade_item(spec.native, p, q, t, i) for i, p, q, t in chunk]
            out.append((topic(spec.native), trade_message(items), (spec.symbol, chunk[0][0])))
        return out

    def ground_truth(self) -> list[Trade]:
        """Every trade sent so far (ids are the simulator's, not Finnhub's: it has none)."""
        return tapes_truth(self._tapes, EXCHANGE)
