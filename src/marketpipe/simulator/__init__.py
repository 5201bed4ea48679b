"""Local venues speaking their real WebSocket + REST protocols, fed by a synthetic market or
recorded frames, with seeded fault injection. Used by `demo`, tests and benchmarks.

Every venue is a front (`front.VenueFront`: pump, faults, fan-out, server lifecycle) plus its
own protocol; Binance's is `SimulatedExchange`.
"""

from marketpipe.simulator.columns import TradeColumns
from marketpipe.simulator.exchange import SimulatedExchange, run_simulator
from marketpipe.simulator.faults import FaultInjector, FaultPlan
from marketpipe.simulator.feed import Feed, SyntheticFeed
from marketpipe.simulator.front import FrontClient, VenueFront
from marketpipe.simulator.history import TradeHistory
from marketpipe.simulator.market import SyntheticMarket
from marketpipe.simulator.recorded import RecordedFeed
from marketpipe.simulator.streams import StreamRules
from marketpipe.simulator.symbols import SymbolSpec, symbol_spec
from marketpipe.simulator.wire import iter_trade_lines, write_trade_frames

__all__ = [
    "FaultInjector",
    "FaultPlan",
    "Feed",
    "FrontClient",
    "RecordedFeed",
    "SimulatedExchange",
    "StreamRules",
    "SymbolSpec",
    "SyntheticFeed",
    "SyntheticMarket",
    "TradeColumns",
    "TradeHistory",
    "VenueFront",
    "iter_trade_lines",
    "run_simulator",
    "symbol_spec",
    "write_trade_frames",
]
