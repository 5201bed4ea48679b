"""The Binance spot connector: the generic venue connector running `BinanceSpec`.

Kept as a class of its own so callers (the cluster's ingest role, tests) can build one from
Binance's settings alone, as before venues were declared.
"""

from collections.abc import Mapping, Sequence

from marketpipe.model.symbols import SymbolMap
from marketpipe.sources.binance.rest import BinanceRestClient
from marketpipe.sources.binance.settings import BinanceSettings
from marketpipe.sources.binance.spec import BinanceSpec
from marketpipe.sources.connector import (
    ConnectionStatus,
    ConnectorStatus,
    Emit,
    SymbolStatus,
    VenueConnector,
)

__all__ = ["BinanceConnector", "ConnectionStatus", "ConnectorStatus", "SymbolStatus"]


class BinanceConnector(VenueConnector):
    """Streams `<sym>@trade` and `<sym>@bookTicker` for `symbols` and back-fills trade gaps."""

    spec: BinanceSpec

    def __init__(
        self,
        settings: BinanceSettings,
        symbols: list[str],
        emit: Emit,
        start_positions: Mapping[str, int] | None = None,
        symbol_map: SymbolMap | None = None,
        *,
        rest: BinanceRestClient | None = None,
        start_holes: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("BinanceConnector needs at least one symbol")
        spec = BinanceSpec(settings, symbol_map=symbol_map, rest=rest)
        super().__init__(spec, symbols, emit, start_positions, start_holes=start_holes)
        self.settings = settings
