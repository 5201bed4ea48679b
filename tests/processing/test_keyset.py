"""KeySet: dedup of trade keys for venues without consecutive ids, and the engine using it.
Keys here are Finnhub-like: millisecond time x 1000 + the ordinal within that millisecond."""

import numpy as np
import pyarrow as pa
import pytest

from marketpipe.config import AlertSettings
from marketpipe.model.records import Position
from marketpipe.model.schemas import TRADE_SCHEMA
from marketpipe.model.venues import KEY_FLOOR, KEYED_VENUES, has_sequential_ids
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine
from marketpipe.processing.keyset import KeySet

T0_MS = 1_723_161_600_000


def keys(*values: int) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(values, dtype=np.int64)


def test_new_keys_are_unseen_until_added_and_then_seen() -> None:
    s = KeySet()
    assert s.unseen(keys(5, 3, 9)).tolist() == [True, True, True]
    s.add(keys(5, 3))
    assert s.unseen(keys(3, 4, 5, 9)).tolist() == [False, True, False, True]
    assert (s.max_id, len(s), s.ranges, s.gaps_found, s.holes) == (5, 2, [], 0, 0)


def test_the_floor_and_everything_below_it_count_as_seen() -> None:
    s = KeySet(floor=100)
    assert s.unseen(keys(99, 100, 101)).tolist() == [False, False, True]
    assert s.max_id == 100  # nothing kept yet: the floor is the newest key known
    assert KeySet().max_id is None


def test_beyond_capacity_the_oldest_keys_raise_the_floor() -> None:
    s = KeySet(capacity=3)
    s.add(keys(10, 20, 30))
    assert (len(s), s.floor) == (3, -1)  # exactly the capacity: all kept
    s.add(keys(25))
    assert (len(s), s.floor) == (3, 10)  # the oldest went, and is still seen
    assert s.unseen(keys(10, 15, 20, 25, 31)).tolist() == [False, True, False, False, True]
    with pytest.raises(ValueError, match="capacity"):
        KeySet(capacity=0)


def test_finnhub_is_keyed_and_the_crypto_venues_are_sequential() -> None:
    assert "finnhub" in KEYED_VENUES
    assert not has_sequential_ids("finnhub")
    assert has_sequential_ids("binance") and has_sequential_ids("kraken")


def test_a_keyed_position_cannot_prove_completeness() -> None:
    keyed = Position("finnhub", "AAPL-USD", 5, 1, [], 0, 0, 3, 0)
    assert keyed.completeness is None and keyed.missing_ids == 0
    assert Position("binance", "BTC-USDT", 5, 1, [], 0, 0, 3, 0).completeness == 1.0


def test_ids_from_the_key_floor_up_are_keys_on_any_venue() -> None:
    """Kraken's v1 recordings have no ids: replay gives them arrival keys (us x 1000 + slot)."""
    assert has_sequential_ids("kraken", KEY_FLOOR - 1)
    assert not has_sequential_ids("kraken", KEY_FLOOR)
    assert Position("kraken", "XMR-USD", KEY_FLOOR, 1, [], 0, 0, 1, 0).completeness is None
    below = Position(
        "kraken", "XMR-USD", KEY_FLOOR - 1, 1, [(KEY_FLOOR - 1, KEY_FLOOR - 1)], 0, 0, 1, 0
    )
    assert below.completeness == 1.0


def _trades(
    rows: list[tuple[int, float]], exchange: str = "finnhub", symbol: str = "AAPL-USD"
) -> pa.Table:
    """Finnhub trades of AAPL: (key, price); the key's millisecond is the trade time."""
    return pa.Table.from_pylist(
        [
            {"exchange": exchange, "symbol": symbol, "trade_id": key, "price": price,
             "qty": 10.0, "side": "buy", "ts_event": key // 1000 * 1000,
             "ts_recv": key // 1000 * 1000}
            for key, price in rows
        ],
        schema=TRADE_SCHEMA,
    )  # fmt: skip


def _engine(row_path_max: int) -> CandleEngine:
    return CandleEngine(
        AlertRules(AlertSettings()), grace_us=0, allowed_lateness_us=60_000_000,
        row_path_max=row_path_max,
    )  # fmt: skip


PATHS = pytest.mark.parametrize("row_path_max", [10**9, 0], ids=["row-path", "polars-path"])


@PATHS
def test_the_engine_dedups_keys_without_ranges_or_gaps(row_path_max: int) -> None:
    engine = _engine(row_path_max)
    # Two real trades in one millisecond (ordinals 0 and 1), equal price and size: both kept.
    first = [(T0_MS * 1000, 189.5), (T0_MS * 1000 + 1, 189.5), ((T0_MS + 7) * 1000, 190.0)]
    out = engine.process(_trades(first))
    assert out.trades.num_rows == 3 and out.duplicates == 0
    again = engine.process(_trades([*first[1:], ((T0_MS + 9) * 1000, 190.5)]))  # a re-send
    assert again.trades.num_rows == 1 and again.duplicates == 2
    [position] = engine.positions()
    assert position.id_ranges == [] and position.gaps_found == 0
    assert position.last_trade_id == (T0_MS + 9) * 1000 and position.trades_seen == 4
    assert position.completeness is None


@PATHS
def test_after_a_restart_every_stored_key_is_seen(row_path_max: int) -> None:
    first = _engine(row_path_max)
    rows = [(T0_MS * 1000 + n, 189.5 + n) for n in range(5)]
    first.process(_trades(rows))
    restarted = _engine(row_path_max)
    restarted.restore(first.positions(), [])
    replayed = restarted.process(_trades([*rows, (T0_MS * 1000 + 5, 195.0)]))
    assert replayed.trades.column("trade_id").to_pylist() == [T0_MS * 1000 + 5]
    assert replayed.duplicates == 5


@PATHS
def test_arrival_keys_on_a_sequential_venue_are_deduped_as_keys_not_gaps(
    row_path_max: int,
) -> None:
    """Three Kraken v1 trades keyed far apart: no gaps, completeness not provable, and a
    restart still sees them; a v2 symbol of the same venue keeps its id ledger."""
    engine = _engine(row_path_max)
    v1 = [(KEY_FLOOR * 17 + n * 5_000, 100.0 + n) for n in range(3)]
    engine.process(_trades(v1, "kraken", "XMR-USD"))
    engine.process(_trades([(7, 50.0), (9, 51.0)], "kraken", "BTC-USD"))
    keyed, sequential = sorted(engine.positions(), key=lambda p: p.symbol, reverse=True)
    assert (keyed.symbol, keyed.gaps_found, keyed.id_ranges) == ("XMR-USD", 0, [])
    assert keyed.completeness is None
    assert (sequential.symbol, sequential.gaps_found) == ("BTC-USD", 1)
    assert sequential.completeness == 2 / 3
    restarted = _engine(row_path_max)
    restarted.restore(engine.positions(), [])
    again = restarted.process(_trades(v1, "kraken", "XMR-USD"))
    assert again.trades.num_rows == 0 and again.duplicates == 3
