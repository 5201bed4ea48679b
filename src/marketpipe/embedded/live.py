"""A live run (`run`, and the heart of `demo`): one connector per venue, a poller per market-data
source (CoinGecko), the pipeline, the API and the scheduler in one event loop, with a clean
stop on the first signal."""

import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import uvicorn
from pydantic import BaseModel

from marketpipe.bus.broadcast import CommitBroadcaster
from marketpipe.bus.memory import MemoryBus
from marketpipe.config import Settings
from marketpipe.embedded.pipeline import CommitHook, Pipeline
from marketpipe.embedded.scheduler import Scheduler
from marketpipe.embedded.stores import open_store
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import ConfigError
from marketpipe.model.records import DeadLetter, MarketSnapshot, Position, Quote, Trade
from marketpipe.model.schemas import TRADE_SCHEMA, to_table
from marketpipe.observability.native import status as native_status
from marketpipe.sources.coingecko.poller import MarketPoller
from marketpipe.sources.connector import VenueConnector
from marketpipe.sources.venues import display_name, venue
from marketpipe.storage.embedded import EmbeddedStore

log = logging.getLogger(__name__)

LiveRecord = Trade | Quote | DeadLetter | MarketSnapshot
# Starts the venues given the last stored trade id per venue and symbol; returns how to
# connect to each (the demo's simulated exchanges): a venue's VenueSettings, or a market-data
# source's section (CoinGeckoSettings pointed at a simulated CoinGecko).
StartVenues = Callable[[dict[str, dict[str, int]]], Awaitable[Mapping[str, BaseModel]]]


def _console_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# How long a clean stop waits for gap back-fills still running (`LiveRun._settle`). A
# back-fill paced by a venue's REST rate limit (Kraken: about one request a second) and
# retried after a refusal can take longer than 5 s: a bounded run that ended with one pending
# left a one-trade hole in a CI demo run.
SETTLE_STOPPED_S = 5.0
SETTLE_ENDED_S = 15.0


@dataclass(slots=True)
class LiveRun:
    """`marketpipe run`: live exchange -> bus -> engine -> storage, with the API alongside."""

    settings: Settings
    on_commit: CommitHook | None = None
    # Starts the venues once the data dir is open, from the last stored trade id per symbol,
    # and returns where to connect (the demo's simulated exchanges); None: the settings'.
    start_venues: StartVenues | None = None
    store: EmbeddedStore | None = None
    pipeline: Pipeline | None = None
    connectors: dict[str, VenueConnector] = field(default_factory=dict)
    # The market-data sources' pollers (CoinGecko), by name; their snapshots share the bus.
    pollers: dict[str, MarketPoller] = field(default_factory=dict)
    api_port: int | None = None
    scheduler: Scheduler | None = None
    extra_status: dict[str, Any] = field(default_factory=dict)
    # Every committed batch goes here too: the API's WebSocket pushes come from it.
    broadcaster: CommitBroadcaster = field(default_factory=CommitBroadcaster)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Ends the engine loop even if its cancellation is lost: Python 3.11's wait_for (in the
    # bus drain) can swallow a cancel that races with a record arriving, and the run would
    # then wait for the loop forever.
    _consumer_done: asyncio.Event = field(default_factory=asyncio.Event)
    # One-line notices for the person at the console (the venue unreachable, and back).
    notify: Callable[[str], None] = _console_line
    # Trades the connector dropped as already forwarded, as far as the totals know them.
    _source_duplicates: int = 0

    async def run(
        self, duration_s: float | None = None, ready: Callable[["LiveRun"], None] | None = None
    ) -> None:
        settings = self.settings
        store = self.store = open_store(settings, live=True)
        lock = store.dirs.lock
        try:
            pipeline = self.pipeline = await asyncio.to_thread(
                Pipeline,
                settings,
                store,
                self._committed,
                on_fold=self._folded,
                on_commit_failed=self._commit_failed,
            )
            # Everything loaded so far lives as long as the process: keep it out of the
            # garbage collector's full passes, which otherwise scan it every few hundred
            # milliseconds at live rates (seen as stalls of the event loop in profiles).
            gc.freeze()
            bus: MemoryBus[LiveRecord] = MemoryBus()
            stored = store.warm.positions()
            last_ids: dict[str, dict[str, int]] = {name: {} for name in settings.venues}
            for p in stored:
                last_ids.setdefault(p.exchange, {})[p.symbol] = p.last_trade_id
            if self.start_venues is not None:
                started = await self.start_venues(last_ids)
                settings = self.settings = settings.model_copy(update=dict(started))
            self.connectors = {
                name: self._connector(name, bus, last_ids[name], stored)
                for name in settings.trade_venues
            }
            self.pollers = {name: self._poller(name) for name in settings.market_sources}
            listener = _bind(settings.api.host, settings.api.port)
            self.api_port = listener.getsockname()[1]
            server = self._api_server()
            tasks = [
                *(
                    asyncio.create_task(connector.run(), name=name)
                    for name, connector in self.connectors.items()
                ),
                *(
                    asyncio.create_task(self._poll(poller, bus), name=name)
                    for name, poller in self.pollers.items()
                ),
                asyncio.create_task(self._consume(bus, pipeline), name="engine"),
                asyncio.create_task(self._watch_venue(), name="venue-watch"),
                asyncio.create_task(server.serve(sockets=[listener]), name="api"),
            ]
            if settings.scheduler.enabled:  # dbt builds and the daily lifecycle
                from marketpipe.embedded.jobs import embedded_jobs

                self.scheduler = Scheduler(embedded_jobs(settings, store))
                tasks.insert(-2, asyncio.create_task(self.scheduler.run(), name="scheduler"))
            lock.write_text(
                json.dumps({"pid": os.getpid(), "host": settings.api.host, "port": self.api_port})
            )
            if ready is not None:
                ready(self)
            stop = asyncio.create_task(self._stopping.wait(), name="stop")
            # Runs until the duration, a stop() call, or a task failing (e.g. the disk is full).
            done, _ = await asyncio.wait(
                [stop, *tasks], timeout=duration_s, return_when=asyncio.FIRST_COMPLETED
            )
            if not any(task in done for task in tasks):  # a clean stop, not a failure
                # A run that reached its duration (demo, bench) can wait for its last
                # back-fills; one told to stop (a signal: docker stop kills after 10 s) cannot.
                await self._settle(bus, SETTLE_STOPPED_S if stop in done else SETTLE_ENDED_S)
            self._consumer_done.set()
            server.should_exit = True
            for task in (stop, *tasks[:-1]):  # the API (last) stops via should_exit
                task.cancel()
            await asyncio.gather(stop, *tasks, return_exceptions=True)
            self._count_source_duplicates(pipeline)  # drops of the last moments too
            failed = [t for t in done if t is not stop and not t.cancelled() and t.exception()]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            await asyncio.to_thread(store.export_to_lake)
        finally:
            for poller in self.pollers.values():
                await poller.aclose()
            lock.unlink(missing_ok=True)
            store.close()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def connector(self) -> VenueConnector | None:
        """Binance's connector, or the first venue's when Binance is not running."""
        return self.connectors.get("binance") or next(iter(self.connectors.values()), None)

    def _connector(
        self,
        name: str,
        bus: MemoryBus[LiveRecord],
        last_ids: dict[str, int],
        stored: list[Position],
    ) -> VenueConnector:
        section = self.settings.venue_settings(name)
        symbols = self.settings.venue_symbols(name)
        if not symbols:
            raise ConfigError(
                f"venue {name} has no symbols: set [{name}] symbols in marketpipe.toml or "
                f"MARKETPIPE_{name.upper()}__SYMBOLS"
            )
        holes = {p.symbol: id_holes(p.id_ranges) for p in stored if p.exchange == name}
        spec = venue(name).build(section)
        return VenueConnector(spec, symbols, bus.publish, last_ids, start_holes=holes)

    def _poller(self, name: str) -> MarketPoller:
        section = getattr(self.settings, name)
        if name != "coingecko":  # config.MARKET_SOURCES and this stay in step
            raise ConfigError(f"no poller for market-data source {name}")
        return MarketPoller(section)

    async def _poll(self, poller: MarketPoller, bus: MemoryBus[LiveRecord]) -> None:
        """Each poll's snapshots and dead letters go on the bus, to commit with the stream."""
        async for batch in poller.batches():
            records: list[LiveRecord] = [*batch.snapshots, *batch.dead_letters]
            if records:
                await bus.publish(records)

    async def _settle(self, bus: MemoryBus[LiveRecord], timeout_s: float) -> None:
        """Before a clean stop, give gap back-fills still running, and the records queued for
        the engine, a few seconds to commit: the stop then leaves no hole for the next start
        to fill (the pipeline keeps up with the stream, so a gap found in the last second
        would otherwise show as one)."""
        for connector in self.connectors.values():
            # A frame arriving now could reveal a gap after the wait below has ended.
            connector.quiesce()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pending = any(c.status().backfill_pending for c in self.connectors.values())
            if not pending and not bus.pending():
                break
            await asyncio.sleep(0.05)
        # The last drained batch is on its way to a commit: one batch window and a bit.
        await asyncio.sleep(self.settings.engine.batch_max_delay_ms / 1000 + 0.05)

    def _folded(self, batch: CommitBatch, folded_ns: int) -> None:
        # Trades, quotes and provisional candles go to WebSocket clients now; the rest of
        # the batch (final candles, tickers, alerts) once `_committed` says it is durable.
        self.broadcaster.publish_provisional(batch, folded_ns)

    def _committed(self, batch: CommitBatch, committed_ns: int) -> None:
        self.broadcaster.publish(batch, committed_ns)
        if self.on_commit is not None:
            self.on_commit(batch, committed_ns)

    def _commit_failed(self, batch: CommitBatch, error: BaseException) -> None:
        """The run ends with the store's error (as any failed commit ends it); the clients
        that saw this batch provisionally are told, and a restart back-fills its trades."""
        log.error(
            "a batch pushed provisionally was not committed: %s (%d trades; a restart "
            "back-fills them, same ids, from the stored positions where the venue has ids)",
            error,
            batch.trades.num_rows,
        )
        self.broadcaster.abandon(batch, error)

    def _api_server(self) -> uvicorn.Server:
        assert self.store is not None
        # The API stack loads only for live runs: replay starts without it.
        from marketpipe.serving.app import create_app
        from marketpipe.serving.backend import embedded_backend
        from marketpipe.serving.routes_marts import DuckDBMarts

        app = create_app(
            embedded_backend(self.store, self.status, self.broadcaster), self.settings.api
        )
        app.state.marts = DuckDBMarts(self.settings.data_dir)  # dbt's marts, see analytics/
        app.state.view.configure_symbols(self.settings.configured_symbols())
        config = uvicorn.Config(
            app, host=self.settings.api.host, port=self.settings.api.port, log_level="warning",
            log_config=None, lifespan="off",
        )  # fmt: skip
        return _EmbeddedServer(config)

    async def _consume(self, bus: MemoryBus[LiveRecord], pipeline: Pipeline) -> None:
        engine = self.settings.engine
        last_idle = time.monotonic()
        while not self._consumer_done.is_set():
            records = await bus.drain(
                engine.batch_max_trades, engine.batch_max_delay_ms / 1000, 0.25
            )
            if records:
                trades = [r for r in records if type(r) is Trade]
                quotes = [r for r in records if type(r) is Quote]
                dead = [r for r in records if type(r) is DeadLetter]
                snapshots = [r for r in records if type(r) is MarketSnapshot]
                await _finish_on_cancel(
                    asyncio.to_thread(_ingest_records, pipeline, trades, quotes, dead, snapshots)
                )
            self._count_source_duplicates(pipeline)
            # The engine decides (settings: engine.idle_watermark, idle_lag_s) what it moves.
            if time.monotonic() - last_idle >= 0.25 and self._sources_settled():
                last_idle = time.monotonic()
                await _finish_on_cancel(
                    asyncio.to_thread(pipeline.advance_idle, time.time_ns() // 1000)
                )

    async def _watch_venue(self, every_s: float = 0.5) -> None:
        """Say plainly, once per outage, that a venue cannot be reached and what to check;
        the structured logs have every attempt. The connectors keep retrying meanwhile."""
        reported: set[str] = set()
        while True:
            await asyncio.sleep(every_s)
            for name, connector in self.connectors.items():
                status = connector.status()
                url = self.settings.venue_settings(name).ws_url
                errors = [
                    c.last_error for c in status.connections if not c.connected and c.last_error
                ]
                if errors and name not in reported:
                    self.notify(venue_unreachable(url, errors[0], name))
                    reported.add(name)
                elif name in reported and status.connections_open == len(status.connections) > 0:
                    self.notify(f"connected to {display_name(name)} at {url}")
                    reported.discard(name)
            for name, poller in self.pollers.items():
                polled = poller.status()
                if polled.consecutive_failures >= 2 and polled.last_error and name not in reported:
                    self.notify(source_unreachable(name, polled.url, polled.last_error))
                    reported.add(name)
                elif name in reported and polled.consecutive_failures == 0:
                    self.notify(f"polling {display_name(name)} at {polled.url} again")
                    reported.discard(name)

    @property
    def _dropped_by_sources(self) -> int:
        return sum(c.duplicates_dropped for c in self.connectors.values())

    def _count_source_duplicates(self, pipeline: Pipeline) -> None:
        """The connectors drop live trades already forwarded (ids at or below the last one):
        they count as duplicates where the user looks, like the engine's own."""
        dropped = self._dropped_by_sources
        if dropped > self._source_duplicates:
            pipeline.count_source_duplicates(dropped - self._source_duplicates)
            self._source_duplicates = dropped

    def _sources_settled(self) -> bool:
        """Advance idle watermarks only while every connection is up and no back-fill is due."""
        if not self.connectors:
            return False
        for connector in self.connectors.values():
            status = connector.status()
            if not (
                status.connections
                and status.connections_open == len(status.connections)
                and not status.backfill_pending
            ):
                return False
        return True

    def status(self) -> dict[str, Any]:
        """Per-component health for `/api/v1/system/health`."""
        age = self.store.warm.last_commit_age_s() if self.store is not None else None
        components: dict[str, Any] = {"storage": {"status": "ok", "last_commit_age_s": age}}
        for name, connector in self.connectors.items():
            s = connector.status()
            components[name] = {
                "status": "ok"
                if s.connections_open == len(s.connections) and s.connections
                else "degraded",
                "connections_open": s.connections_open,
                "reconnects": s.reconnects,
                "backfill_pending": s.backfill_pending,
                "dead_letters": s.dead_letters,
                "duplicates_dropped": sum(x.duplicates_dropped for x in s.symbols.values()),
                "last_error": next((c.last_error for c in s.connections if c.last_error), None),
                # Without consecutive ids, completeness cannot be proven: never a made-up 100 %.
                "completeness_provable": s.has_trade_ids,
            }
        for name, poller in self.pollers.items():
            components[name] = poller.status().health()
        if self.pipeline is not None:
            t = self.pipeline.totals
            # Every stage's duplicates: the engine's, and the connector's drops, including those
            # the totals learn of on the consumer's next pass (read here, never written: the
            # totals are the consumer's).
            uncounted = max(0, self._dropped_by_sources - self._source_duplicates)
            components["engine"] = {
                "status": "ok",
                "batches": t.batches,
                "trades": t.trades_stored,
                "duplicates": t.duplicates + uncounted,
                "duplicates_source": t.duplicates_source + uncounted,
                "late_trades": t.late,
                "market_snapshots": t.snapshots,
                "open_windows": self.pipeline.engine.open_windows,
            }
        if self.scheduler is not None:
            components["scheduler"] = self.scheduler.status()
        # The compiled hot path, or why marketpipe runs on its Python path (still healthy).
        native = native_status()
        components["native"] = {"status": "ok", "active": native.active, "reason": native.reason}
        components.update(self.extra_status)
        healthy = all(c.get("status") == "ok" for c in components.values())
        return {
            "status": "ok" if healthy else "degraded",
            "last_commit_age_s": age,
            "components": components,
        }


async def _finish_on_cancel(work: Awaitable[object]) -> None:
    """Await `work`; if cancelled meanwhile, still let it finish before cancelling. A batch
    being committed on a worker thread must not outlive the run, or it would commit after
    the store closed (and be missing from it until the next start)."""
    future = asyncio.ensure_future(work)
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        await future
        raise


def _ingest_records(
    pipeline: Pipeline,
    trades: list[Trade],
    quotes: list[Quote],
    dead: list[DeadLetter],
    snapshots: list[MarketSnapshot],
) -> None:
    """On a worker thread: the record-to-Arrow conversion stays off the event loop too."""
    pipeline.ingest(to_table(trades, TRADE_SCHEMA), quotes, dead, snapshots)


def venue_unreachable(ws_url: str, error: str, name: str = "binance") -> str:
    """The one line a user sees when a venue cannot be reached, with what to check."""
    env = f"MARKETPIPE_{name.upper()}"
    return (
        f"cannot reach {display_name(name)} at {ws_url} ({error}); retrying. Check the network "
        f"and any proxy or firewall, or point {env}__WS_URL (and {env}__REST_URL) at a "
        "reachable endpoint. Offline? `make demo` runs the whole pipeline against a local "
        "simulated exchange."
    )


def source_unreachable(name: str, url: str, error: str) -> str:
    """The one line a user sees when a market-data source keeps failing, with what to check."""
    env = f"MARKETPIPE_{name.upper()}"
    return (
        f"cannot poll {display_name(name)} at {url} ({error}); retrying with backoff. Check "
        f"the network, the API key ({env}__API_KEY) and the rate limit "
        f"({env}__REQUESTS_PER_MINUTE), or point {env}__REST_URL at a reachable endpoint."
    )


def id_holes(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ids missing between stored id ranges: `[(1, 5), (9, 9)]` -> `[(6, 8)]`."""
    ordered = sorted(ranges)
    return [(a[1] + 1, b[0] - 1) for a, b in pairwise(ordered) if b[0] > a[1] + 1]


def _bind(host: str, port: int) -> socket.socket:
    """Bind the API socket up front, so a taken port is a clear error before anything runs."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise ConfigError(
            f"cannot serve the API on {host}:{port} ({exc.strerror}); "
            "choose another with --port or MARKETPIPE_API__PORT"
        ) from None
    listener.listen(128)
    return listener


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our own event loop: signals stay with the pipeline, which stops the
    server itself, instead of uvicorn capturing Ctrl-C and re-raising it later."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
