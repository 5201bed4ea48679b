"""Binance spot as a venue spec: combined-stream shards, exchangeInfo's symbol map, trade
frames with consecutive ids, and `historicalTrades` for back-fill."""

import asyncio
import logging
from collections.abc import Sequence
from typing import ClassVar, Final

from marketpipe.model.errors import SourceError
from marketpipe.model.records import Trade
from marketpipe.model.symbols import SymbolMap
from marketpipe.observability.metrics import PRODUCER_ERRORS
from marketpipe.sources.binance.frames import parse_frame
from marketpipe.sources.binance.rest import BinanceRestClient
from marketpipe.sources.binance.settings import BinanceSettings
from marketpipe.sources.binance.streams import plan_shards
from marketpipe.sources.venue import Parsed, Subscription, TradeHistory, VenueSpec

log = logging.getLogger(__name__)

EXCHANGE_INFO_ATTEMPTS: Final = 2


class BinanceSpec(VenueSpec):
    name: ClassVar[str] = "binance"
    has_trade_ids: ClassVar[bool] = True
    settings: BinanceSettings

    def __init__(
        self,
        settings: BinanceSettings,
        *,
        symbol_map: SymbolMap | None = None,
        rest: BinanceRestClient | None = None,
    ) -> None:
        super().__init__(settings)
        self.symbol_map = symbol_map or SymbolMap()
        self._known_map = symbol_map is not None
        self._given_rest = rest
        self._rest = rest

    async def prepare(self, symbols: Sequence[str]) -> None:
        self._rest = self._rest or BinanceRestClient(self.settings)
        if not self._known_map:
            self.symbol_map = await self._load_symbol_map(symbols)
        self._rest.symbol_map = self.symbol_map

    def plan(self, symbols: Sequence[str]) -> list[Subscription]:
        shards = plan_shards(
            self.settings.ws_url, symbols, self.symbol_map, self.settings.max_streams_per_connection
        )
        return [
            Subscription(shard.name, shard.url, shard.symbols, shard.subscribe_messages)
            for shard in shards
        ]

    def parse(self, raw: bytes, recv_us: int) -> Sequence[Parsed]:
        return (parse_frame(raw, self.symbol_map, recv_us),)

    def history(self) -> TradeHistory | None:
        assert self._rest is not None, "prepare() opens the REST client"
        return _HistoricalTrades(self._rest, self.symbol_map)

    async def aclose(self) -> None:
        if self._rest is not None and self._given_rest is None:
            await self._rest.aclose()

    async def _load_symbol_map(self, symbols: Sequence[str]) -> SymbolMap:
        natives = [s.replace("-", "") for s in symbols]
        # Few attempts: the WebSocket waits for this, and an unreachable venue must be told
        # to the user within seconds; without exchangeInfo, known quotes split the symbols.
        assert self._rest is not None
        probe = (
            self._rest
            if self._given_rest is not None
            else BinanceRestClient(self.settings, max_attempts=EXCHANGE_INFO_ATTEMPTS)
        )
        try:
            async with asyncio.timeout(self.settings.rest_timeout_s):
                # Symbols exchangeInfo does not know still map via `normalize`.
                return await probe.symbol_map_from_exchange_info(natives)
        except (SourceError, TimeoutError, ValueError, KeyError) as exc:
            PRODUCER_ERRORS.labels(self.name, "exchange_info").inc()
            log.warning("exchangeInfo unavailable (%s); splitting symbols by known quotes", exc)
            return SymbolMap()
        finally:
            if probe is not self._rest:
                await probe.aclose()


class _HistoricalTrades:
    """`historicalTrades` paged by id, in the back-filler's terms (normalized symbols)."""

    def __init__(self, rest: BinanceRestClient, symbol_map: SymbolMap) -> None:
        self._rest = rest
        self._symbols = symbol_map

    async def trades_from(self, symbol: str, from_id: int, limit: int) -> list[Trade]:
        return await self._rest.historical_trades(self._symbols.native(symbol), from_id, limit)
