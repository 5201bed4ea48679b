"""`marketpipe ingest --bus kafka`: sources (live connectors, replay files, the synthetic
market) publish to Kafka instead of the in-process queue.

Trades and quotes are keyed `exchange:symbol`, market snapshots (CoinGecko) go to
`marketpipe.market` keyed `source:asset:vs_currency`; frames the source could not parse go to
the DLQ topic with the error, as they would go to `dead_letters` in embedded mode. The producer
is idempotent, so its own retries (e.g. across a broker restart) never duplicate a message.
"""

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from marketpipe.bus import serde
from marketpipe.bus.kafka import DLQ_AT, DLQ_ERROR, DLQ_TOPIC, RecordProducer, Topics
from marketpipe.model.records import DeadLetter, MarketSnapshot, Quote, Trade
from marketpipe.model.schemas import TRADE_SCHEMA
from marketpipe.sources.connector import VenueConnector
from marketpipe.sources.replay import ReplayReader
from marketpipe.sources.venue import VenueSettings
from marketpipe.sources.venues import venue

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestTotals:
    trades: int = 0
    quotes: int = 0
    snapshots: int = 0
    dead_letters: int = 0
    seconds: float = 0.0

    @property
    def messages_per_s(self) -> float:
        total = self.trades + self.quotes + self.snapshots + self.dead_letters
        return total / self.seconds if self.seconds else 0.0


class KafkaIngest:
    """Turns source output into Kafka messages."""

    def __init__(self, bootstrap: str, topics: Topics, **producer_config: object) -> None:
        self.topics = topics
        self.producer = RecordProducer(bootstrap, topics, **producer_config)
        self.totals = IngestTotals()

    def trade_table(self, trades: pa.Table) -> None:
        self.producer.encoded_trades(serde.encode_trade_columns(trades.cast(TRADE_SCHEMA)))
        self.totals.trades += trades.num_rows

    def records(self, records: Sequence[Trade | Quote | DeadLetter]) -> None:
        for record in records:
            if type(record) is Trade:
                self.producer.trades([record])
                self.totals.trades += 1
            elif type(record) is Quote:
                self.producer.quotes([record])
                self.totals.quotes += 1
            elif isinstance(record, DeadLetter):
                self.dead_letter(record)

    def market(self, records: Iterable[MarketSnapshot | DeadLetter]) -> None:
        """Publish one poll's market snapshots; its unparseable rows go to the DLQ."""
        for record in records:
            if isinstance(record, MarketSnapshot):
                self.producer.market_snapshots([record])
                self.totals.snapshots += 1
            else:
                self.dead_letter(record)

    def dead_letter(self, dead: DeadLetter) -> None:
        headers = [
            (DLQ_ERROR, dead.error.encode()[:2000]),
            (DLQ_TOPIC, f"source:{dead.source}".encode()),
            (DLQ_AT, str(dead.ts).encode()),
            ("context", dead.context.encode()[:2000]),
        ]
        self.producer.produce(self.topics.dlq, None, dead.raw, headers)
        self.totals.dead_letters += 1

    def flush(self) -> None:
        self.producer.flush()


def ingest_files(
    ingest: KafkaIngest, paths: Iterable[Path], stop: threading.Event | None = None
) -> IngestTotals:
    """Replay recorded files into Kafka as fast as the broker takes them (until `stop`: what
    was read by then is still flushed)."""
    started = time.perf_counter()
    for chunk in ReplayReader(list(paths)):
        if stop is not None and stop.is_set():
            break
        if chunk.trades.num_rows:
            ingest.trade_table(chunk.trades)
        ingest.records(chunk.quotes)
        for dead in chunk.dead_letters:
            ingest.dead_letter(dead)
    ingest.flush()
    ingest.totals.seconds = time.perf_counter() - started
    return ingest.totals


MarketPoll = Iterable[MarketSnapshot | DeadLetter]  # what one poll of a market source gave


async def ingest_market(
    ingest: KafkaIngest,
    polls: AsyncIterable[MarketPoll] | Iterable[MarketPoll],
    *,
    flush: bool = True,
) -> IngestTotals:
    """Publish every poll of a market source (e.g. the CoinGecko poller's batches as
    `[*b.snapshots, *b.dead_letters]`) until it ends or the task is cancelled; each poll is
    handed to the producer at once, and with `flush` what it holds is delivered at the end."""
    started = time.perf_counter()
    try:
        if isinstance(polls, AsyncIterable):
            async for poll in polls:
                ingest.market(poll)
                ingest.producer.poll()
        else:
            for poll in polls:
                ingest.market(poll)
                ingest.producer.poll()
    finally:
        if flush:
            await asyncio.to_thread(ingest.flush)
        ingest.totals.seconds = time.perf_counter() - started
    return ingest.totals


async def ingest_live(
    ingest: KafkaIngest,
    venues: Mapping[str, tuple[VenueSettings, Sequence[str]]],
    positions: Mapping[str, Mapping[str, int]] | None = None,
    duration_s: float | None = None,
    stop: asyncio.Event | None = None,
    market: AsyncIterable[MarketPoll] | None = None,
) -> IngestTotals:
    """One connector per venue (reconnects, back-fill, watchdog) publishing to Kafka, for
    `duration_s` or until `stop` is set; either way the producer flushes what it holds.

    `venues` maps a venue name to its settings and symbols; `positions` the last stored
    trade id per venue and symbol, where back-fill starts. `market` (e.g. the CoinGecko
    poller's batches) is published to the market topic alongside."""
    started = time.perf_counter()

    async def publish(records: Sequence[Trade | Quote | DeadLetter]) -> None:
        ingest.records(records)
        ingest.producer.poll()

    known = positions or {}
    connectors = [
        VenueConnector(venue(name).build(section), symbols, publish, known.get(name, {}))
        for name, (section, symbols) in venues.items()
    ]
    tasks = [asyncio.create_task(c.run(), name=c.exchange) for c in connectors]
    if market is not None:
        polls = market

        async def publish_market() -> None:
            await ingest_market(ingest, polls, flush=False)

        tasks.append(asyncio.create_task(publish_market(), name="market"))
    stopped = asyncio.create_task((stop or asyncio.Event()).wait(), name="stop")
    try:
        done, _ = await asyncio.wait(
            [*tasks, stopped], timeout=duration_s, return_when="FIRST_COMPLETED"
        )
        for task in tasks:
            if task in done:
                task.result()
    finally:
        stopped.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, stopped, return_exceptions=True)
        await asyncio.to_thread(ingest.flush)
    ingest.totals.seconds = time.perf_counter() - started
    return ingest.totals
