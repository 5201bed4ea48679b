"""A local exchange speaking Binance spot's WebSocket + REST, fed by a synthetic market or
recorded frames, with seeded fault injection. Used by `demo`, tests and benchmarks."""

from marketpipe.simulator.columns import TradeColumns
from marketpipe.simulator.exchange import SimulatedExchange, run_simulator
from marketpipe.simulator.faults import FaultInjector, FaultPlan
from marketpipe.simulator.feed import Feed, SyntheticFeed
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
    "RecordedFeed",
    "SimulatedExchange",
    "StreamRules",
    "SymbolSpec",
    "SyntheticFeed",
    "SyntheticMarket",
    "TradeColumns",
    "TradeHistory",
    "iter_trade_lines",
    "run_simulator",
    "symbol_spec",
    "write_trade_frames",
]
