"""Coinbase Exchange as a venue spec: products in shards of `products_per_connection`, each
connection subscribing its products to `matches`, `ticker` and `heartbeat` in one message;
trade ids are consecutive per product, so gaps are back-filled from `/products/{id}/trades`."""

import json
from collections.abc import Sequence
from typing import ClassVar, Final

from marketpipe.sources.coinbase.frames import parse_frame
from marketpipe.sources.coinbase.rest import CoinbaseRestClient
from marketpipe.sources.coinbase.settings import CoinbaseSettings
from marketpipe.sources.venue import Parsed, Subscription, TradeHistory, VenueSpec

CHANNELS: Final = ("matches", "ticker", "heartbeat")


def subscribe_message(products: Sequence[str]) -> str:
    return json.dumps(
        {"type": "subscribe", "product_ids": list(products), "channels": list(CHANNELS)},
        separators=(",", ":"),
    )


class CoinbaseSpec(VenueSpec):
    name: ClassVar[str] = "coinbase"
    has_trade_ids: ClassVar[bool] = True
    settings: CoinbaseSettings

    def __init__(
        self, settings: CoinbaseSettings, *, rest: CoinbaseRestClient | None = None
    ) -> None:
        super().__init__(settings)
        self._given_rest = rest
        self._rest = rest

    async def prepare(self, symbols: Sequence[str]) -> None:
        # Product ids are our normalized symbols: no map to load, nothing to reach.
        self._rest = self._rest or CoinbaseRestClient(self.settings)

    def plan(self, symbols: Sequence[str]) -> list[Subscription]:
        # Each product on one connection only: one subscription per product and channel,
        # two while a rotation overlaps, within max_subscriptions_per_product_channel (>= 2).
        products = list(dict.fromkeys(symbols))
        size = self.settings.products_per_connection
        return [
            Subscription(
                f"coinbase-ws-{n}",
                self.settings.ws_url,
                tuple(chunk),
                (subscribe_message(chunk),),
            )
            for n, chunk in enumerate(products[i : i + size] for i in range(0, len(products), size))
        ]

    def parse(self, raw: bytes, recv_us: int) -> Sequence[Parsed]:
        return (parse_frame(raw, recv_us),)

    def history(self) -> TradeHistory | None:
        assert self._rest is not None, "prepare() opens the REST client"
        return self._rest

    async def aclose(self) -> None:
        if self._rest is not None and self._given_rest is None:
            await self._rest.aclose()
            self._rest = None
