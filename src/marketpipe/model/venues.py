"""What every layer must know about a venue's trade ids.

Most venues number their trades consecutively per symbol, so ids prove completeness and gaps.
Some give no ids: their connector derives a deterministic *key* from the trade's time and its
arrival (see docs/venues.md). Keys dedup as ids do, but they are not a sequence: they prove
nothing about completeness, and a hole between keys is not a gap.
"""

from typing import Final

# Venues whose `trade_id` is a key derived from time and arrival, not a sequence number.
KEYED_VENUES: Final = frozenset({"finnhub"})

# Keys built from an arrival time in microseconds x 1000 (Kraken's v1 recordings carry no ids)
# are at or above this; no venue's sequence numbers come near it (Binance's are about 5e9).
KEY_FLOOR: Final = 10**17


def has_sequential_ids(exchange: str, trade_id: int = 0) -> bool:
    """Whether `exchange`'s ids, as seen from one of them, are a sequence that proves gaps."""
    return exchange not in KEYED_VENUES and trade_id < KEY_FLOOR
