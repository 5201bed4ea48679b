"""Kraken spot as a venue spec: WebSocket v2 `trade` and `ticker` subscriptions, frames of
v2 (live) and v1 (recordings), and back-fill by trade id over the time-paged REST `Trades`."""

import json
from collections.abc import Sequence
from typing import ClassVar

from marketpipe.model.records import Trade
from marketpipe.sources.kraken.frames import ArrivalKeys, parse_frame
from marketpipe.sources.kraken.history import KrakenTradeHistory, TimeAnchors
from marketpipe.sources.kraken.rest import KrakenRestClient
from marketpipe.sources.kraken.settings import KrakenSettings
from marketpipe.sources.kraken.symbols import canonical, to_ws
from marketpipe.sources.venue import Parsed, Subscription, TradeHistory, VenueSpec


def subscribe_messages(
    pairs: Sequence[str], ticker_trigger: str, first_req_id: int = 1
) -> tuple[str, str]:
    """The two v2 subscribe requests for `pairs` (v2 spelling): trades, then the ticker.

    The trade snapshot (the last 50 trades) is off: what happened before we connected comes
    from REST back-fill, in id order, instead."""
    trade = {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": list(pairs), "snapshot": False},
        "req_id": first_req_id,
    }
    ticker = {
        "method": "subscribe",
        "params": {
            "channel": "ticker",
            "symbol": list(pairs),
            "event_trigger": ticker_trigger,
            "snapshot": True,  # the current best bid/offer at once
        },
        "req_id": first_req_id + 1,
    }
    return json.dumps(trade, separators=(",", ":")), json.dumps(ticker, separators=(",", ":"))


class KrakenSpec(VenueSpec):
    name: ClassVar[str] = "kraken"
    has_trade_ids: ClassVar[bool] = True  # v2 trade ids are sequential per pair
    settings: KrakenSettings

    def __init__(self, settings: KrakenSettings, *, rest: KrakenRestClient | None = None) -> None:
        super().__init__(settings)
        self._given_rest = rest
        self._rest = rest
        self.anchors = TimeAnchors()  # live trades' times, where back-fill pages start
        self.arrival_keys = ArrivalKeys()  # keys of id-less v1 (recorded) trades

    def plan(self, symbols: Sequence[str]) -> list[Subscription]:
        ours = list(dict.fromkeys(canonical(s) for s in symbols))
        size = self.settings.symbols_per_connection
        subscriptions: list[Subscription] = []
        for n, i in enumerate(range(0, len(ours), size)):
            chunk = tuple(ours[i : i + size])
            messages = subscribe_messages(
                [to_ws(s) for s in chunk], self.settings.ticker_event_trigger, 2 * n + 1
            )
            subscriptions.append(
                Subscription(f"kraken-ws-{n}", self.settings.ws_url, chunk, messages)
            )
        return subscriptions

    def parse(self, raw: bytes, recv_us: int) -> Sequence[Parsed]:
        records = parse_frame(raw, recv_us, self.arrival_keys)
        if records and isinstance(records[0], Trade) and raw.lstrip()[:1] == b"{":
            for record in records:  # v2 trades: real ids, worth remembering the time of
                if isinstance(record, Trade):
                    self.anchors.note_live(record)
        return records

    def history(self) -> TradeHistory | None:
        if self._rest is None:
            self._rest = KrakenRestClient(self.settings)
        return KrakenTradeHistory(
            self._rest,
            self.anchors,
            page_size=self.settings.backfill_page_size,
            locate_step_s=self.settings.locate_step_s,
        )

    async def aclose(self) -> None:
        if self._rest is not None and self._given_rest is None:
            await self._rest.aclose()
            self._rest = None
