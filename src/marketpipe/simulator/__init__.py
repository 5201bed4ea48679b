"""Local venues speaking their real WebSocket + REST protocols, fed by a synthetic market or
recorded frames, with seeded fault injection. Used by `demo`, tests and benchmarks.

Every venue is a front (`front.VenueFront`: pump, faults, fan-out, server lifecycle) plus its
own protocol: Binance's is `SimulatedExchange`, Coinbase's `CoinbaseFront`, Kraken's
`KrakenFront`. `MultiVenueMarket` lists assets on several venues over shared fair values, and
`SimulatedVenues` starts every venue's front over one (see `venues.py` for the API).
"""

from marketpipe.simulator.coinbase import CoinbaseFront
from marketpipe.simulator.columns import TradeColumns
from marketpipe.simulator.divergence import Divergence
from marketpipe.simulator.exchange import SimulatedExchange, run_simulator
from marketpipe.simulator.faults import FaultInjector, FaultPlan
from marketpipe.simulator.feed import Feed, SyntheticFeed
from marketpipe.simulator.front import FrontClient, VenueFront
from marketpipe.simulator.history import TradeHistory
from marketpipe.simulator.kraken import KrakenFront
from marketpipe.simulator.listings import Listing, ListingKind
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.multivenue import MultiVenueMarket
from marketpipe.simulator.recorded import RecordedFeed
from marketpipe.simulator.streams import StreamRules
from marketpipe.simulator.symbols import SymbolSpec, symbol_spec
from marketpipe.simulator.venues import SimulatedVenues, VenueUrls, first_ids_after, make_front
from marketpipe.simulator.wire import iter_trade_lines, write_trade_frames

__all__ = [
    "CoinbaseFront",
    "Divergence",
    "FaultInjector",
    "FaultPlan",
    "Feed",
    "FrontClient",
    "KrakenFront",
    "Listing",
    "ListingKind",
    "MultiVenueMarket",
    "RecordedFeed",
    "SimulatedExchange",
    "SimulatedVenues",
    "StreamRules",
    "SymbolSpec",
    "SyntheticFeed",
    "SyntheticMarket",
    "TradeColumns",
    "TradeHistory",
    "VenueFront",
    "VenueUrls",
    "first_ids_after",
    "iter_trade_lines",
    "make_front",
    "run_simulator",
    "symbol_spec",
    "write_trade_frames",
]
