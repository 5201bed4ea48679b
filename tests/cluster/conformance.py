"""Comparing candle sets from different engines, venue by venue, and the conformance inputs
of the venues beside Binance.

Exact: the window, open/high/low/close (chosen trades' prices), trade counts, first/last
trade ids, finality. Sums (volumes, VWAP) are float64 additions whose order depends on how
trades were batched, so they match by `harness.reference.sums_agree` (relative 1e-9), not bit
for bit. `revision` counts re-publications, which depends on batching too, and is not compared.

Coinbase's trades are built as its records are: from its real recorded ws-feed frames
through its own frame parser (`side` there is the maker's), and as a synthetic listing
(`BTC-USD`, `ETH-USDT`, µs trade times). The synthetic ETH-USDT has Binance's symbol and
trade ids, so an engine that keys, dedups or partitions by symbol and trade id without the
exchange merges or drops one venue's trades.
"""

import gzip
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deploy.kafka.broker import KafkaBroker
from pyspark.sql import SparkSession

from harness.reference import SUM_FIELDS, RawTrade, sums_agree
from marketpipe.bus.kafka import Topics
from marketpipe.cluster.spark_engine import SparkSink, run_spark
from marketpipe.config import Settings
from marketpipe.model.records import Candle, Position, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.simulator import MultiVenueMarket
from marketpipe.sources.coinbase.frames import parse_frame
from marketpipe.sources.cryptofeed_recording import received_frames
from marketpipe.spark.job import JobConfig, start
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.cluster.cluster import end_offsets, engine_config

EXACT = tuple(f for f in Candle.__struct_fields__ if f not in SUM_FIELDS and f != "revision")

Key = tuple[str, str, str, int]

COINBASE_RECORDING = (
    Path(__file__).parents[1] / "data" / "coinbase" / "cryptofeed-COINBASE.ws.28.0.gz"
)
# Synthetic listings beside Binance's: ETH-USDT is on both (Coinbase lists USDT pairs too).
COINBASE_LISTINGS = {"coinbase": ["BTC-USD", "ETH-USDT"]}
FIRST_ID = 500_000_000


def by_key(candles: Iterable[Candle]) -> dict[Key, Candle]:
    return {(c.exchange, c.symbol, c.interval, c.open_time): c for c in candles}


def differences(ours: dict[Key, Candle], theirs: dict[Key, Candle], limit: int = 5) -> list[str]:
    out = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key), theirs.get(key)
        if a is None or b is None:
            out.append(f"{key}: only in {'theirs' if a is None else 'ours'}")
        else:
            bad = [f for f in EXACT if getattr(a, f) != getattr(b, f)] + [
                f for f in SUM_FIELDS if not sums_agree(getattr(a, f), getattr(b, f))
            ]
            if bad:
                out.append(
                    f"{key}: {', '.join(f'{f} {getattr(a, f)} != {getattr(b, f)}' for f in bad)}"
                )
        if len(out) >= limit:
            break
    return out


def by_venue(candles: Mapping[Key, Candle]) -> dict[str, dict[Key, Candle]]:
    """Candles split by exchange."""
    out: dict[str, dict[Key, Candle]] = {}
    for key, candle in candles.items():
        out.setdefault(key[0], {})[key] = candle
    return out


def venue_differences(
    ours: Mapping[Key, Candle], theirs: Mapping[Key, Candle], venues: Iterable[str]
) -> dict[str, list[str]]:
    """Per venue (every one of `venues` must be there on both sides), what differs; a venue
    that is missing, or a venue that is not expected, is a difference of its own."""
    mine, other = by_venue(ours), by_venue(theirs)
    expected = set(venues)
    out: dict[str, list[str]] = {}
    for venue in sorted(expected | set(mine) | set(other)):
        if venue not in expected:
            out[venue] = ["not an input venue"]
        elif venue not in mine or venue not in other:
            out[venue] = [f"missing in {'ours' if venue not in mine else 'theirs'}"]
        else:
            diff = differences(mine[venue], other[venue])
            if diff:
                out[venue] = diff
    return out


def minute_trade_counts(candles: Mapping[Key, Candle]) -> Counter[tuple[str, str]]:
    """Trades per (exchange, symbol), summed over the 1m candles."""
    counts: Counter[tuple[str, str]] = Counter()
    for (exchange, symbol, interval, _), candle in candles.items():
        if interval == "1m":
            counts[(exchange, symbol)] += candle.trade_count
    return counts


def input_trade_counts(tables: Iterable[pa.Table]) -> Counter[tuple[str, str]]:
    """Distinct trades per (exchange, symbol) in the input, by plain Python."""
    keys = set()
    for table in tables:
        columns = table.select(["exchange", "symbol", "trade_id"]).to_pydict()
        keys.update(zip(columns["exchange"], columns["symbol"], columns["trade_id"], strict=True))
    return Counter((exchange, symbol) for exchange, symbol, _ in keys)


def recorded_coinbase_trades(path: Path = COINBASE_RECORDING) -> pa.Table:
    """The trades of a real Coinbase ws-feed recording, through Coinbase's frame parser."""
    trades = []
    with gzip.open(path, "rb") as handle:
        for raw, recv_us in received_frames(handle):
            if b'"match"' not in raw and b'"last_match"' not in raw:
                continue
            parsed = parse_frame(raw, recv_us)
            if isinstance(parsed, Trade):
                trades.append(parsed)
    return to_table(trades, TRADE_SCHEMA)


def raw_coinbase_trades(path: Path = COINBASE_RECORDING) -> list[RawTrade]:
    """The same recording read independently of the pipeline (stdlib json), as the reference
    computation's rows: a match's `side` is the maker's, so the buyer is the maker when it is
    "buy"; times to the millisecond (windows are whole minutes, ids break ties)."""
    from datetime import datetime

    rows = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            head, sep, body = line.partition(": ")
            if not sep or " " in head or not body.startswith("{"):
                continue
            frame = json.loads(body)
            if frame.get("type") not in ("match", "last_match"):
                continue
            moment = datetime.fromisoformat(frame["time"].replace("Z", "+00:00"))
            ms = int(moment.timestamp() * 1000)
            rows.append((frame["product_id"], int(frame["trade_id"]), float(frame["price"]),
                         float(frame["size"]), frame["side"] == "buy", ms))  # fmt: skip
    return rows


def coinbase_trades(n: int, start_us: int, binance: pa.Table, seed: int = 23) -> pa.Table:
    """`n` synthetic Coinbase trades (about 11/s from `start_us`: the span the synthetic
    Binance market covers) of `BTC-USD` and of `ETH-USDT` numbered from the first id of
    `binance`'s ETH-USDT: the same symbol with the same trade ids on two venues."""
    eth = binance.filter(pc.equal(binance["symbol"], "ETH-USDT"))["trade_id"]
    first_ids = {"coinbase": {"ETH-USDT": pc.min(eth).as_py(), "BTC-USD": FIRST_ID}}
    market = MultiVenueMarket(COINBASE_LISTINGS, 11.0, seed, start_us, first_ids=first_ids)
    return market.market("coinbase").generate(n).to_arrow()


LastTrades = dict[tuple[str, str], tuple[int, int]]
_LAST = pa.schema(
    [("exchange", pa.string()), ("symbol", pa.string()), ("trade_id", pa.int64()),
     ("ts_event", pa.int64())]
)  # fmt: skip


def last_trades(positions: Iterable[Position]) -> LastTrades:
    """(exchange, symbol) -> (last trade id, largest event time) of stored positions."""
    return {(p.exchange, p.symbol): (p.last_trade_id, p.max_ts_event) for p in positions}


def input_last_trades(tables: Iterable[pa.Table]) -> LastTrades:
    """The same from the input trades, by plain Python."""
    out: LastTrades = {}
    for table in tables:
        columns = (
            table.select(["exchange", "symbol", "trade_id", "ts_event"]).cast(_LAST).to_pydict()
        )
        for exchange, symbol, trade_id, ts in zip(*columns.values(), strict=True):
            last_id, last_ts = out.get((exchange, symbol), (-1, 0))
            out[(exchange, symbol)] = (max(last_id, trade_id), max(last_ts, ts))
    return out


def run_spark_per_venue(
    spark: SparkSession, settings: Settings, store: PostgresWarehouse, broker: KafkaBroker,
    topics: Topics, checkpoint: Path, venues: Iterable[str], *, max_offsets: int,
) -> SparkSink:  # fmt: skip
    """The Spark engine as the cluster runs it for several venues: one candle query (one
    watermark) per exchange, to completion."""
    sink = SparkSink(engine_config(settings), store, broker.bootstrap, topics, "candles")
    job = JobConfig(
        broker.bootstrap, topics.trades, topics.dlq, str(checkpoint),
        max_offsets_per_trigger=max_offsets, exchanges=tuple(sorted(venues)),
    )  # fmt: skip
    queries = start(spark, job, sink)
    run_spark(sink, queries, end_offsets=end_offsets(broker, topics.trades), until_idle=True,
              max_seconds=600)  # fmt: skip
    return sink
