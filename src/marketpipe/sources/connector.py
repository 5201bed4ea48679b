"""The one connector every venue runs on: live trades and quotes, gap-free where ids allow.

Wiring only: the venue's spec plans the connections and parses frames, `ConnectionSupervisor`
keeps each connection alive, `TradeIdTracker` spots gaps and `Backfiller` fetches what is
missing over the venue's REST history. Records go out through `emit` in small lists (one per
batch of frames read together), so per-record overhead stays low.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from marketpipe.model.errors import FrameError
from marketpipe.model.records import DeadLetter, Quote, Trade
from marketpipe.model.symbols import normalize
from marketpipe.observability.metrics import (
    DEAD_LETTERS,
    DUPLICATES,
    PRODUCER_ERRORS,
    PRODUCER_MESSAGES,
)
from marketpipe.sources.backfill import Backfiller
from marketpipe.sources.ratelimit import MessagePacer
from marketpipe.sources.supervisor import ConnectionSupervisor, Frame, SupervisorTiming
from marketpipe.sources.tracker import BackfillJob, TradeIdTracker
from marketpipe.sources.venue import Control, Subscription, VenueSpec, redact_url

log = logging.getLogger(__name__)

Emit = Callable[[list[Trade | Quote | DeadLetter]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SymbolStatus:
    last_trade_id: int | None
    live_trades: int
    backfilled: int
    duplicates_dropped: int
    gaps_found: int
    gaps_filled: int
    missing_ids: int


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    name: str
    url: str
    connected: bool
    connections_opened: int
    frames: int
    reconnects: dict[str, int]
    connect_failures: int = 0
    last_error: str | None = None  # why the last connect failed, until one succeeds


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    connections_open: int
    connections: list[ConnectionStatus]
    symbols: dict[str, SymbolStatus]
    reconnects: int
    dead_letters: int
    backfill_pending: int
    started: bool = field(default=True)
    exchange: str = "binance"
    has_trade_ids: bool = True  # False: completeness cannot be proven from ids


class VenueConnector:
    """Streams `spec`'s trades and quotes for `symbols` and back-fills trade-id gaps.

    `start_positions` maps a normalized symbol to the last trade id stored before a restart;
    the connector back-fills from the id after it. `run()` runs until cancelled and never
    raises for bad input or unreachable servers: it logs, counts and retries.
    """

    def __init__(
        self,
        spec: VenueSpec,
        symbols: Sequence[str],
        emit: Emit,
        start_positions: Mapping[str, int] | None = None,
        *,
        start_holes: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    ) -> None:
        if not symbols:
            raise ValueError(f"the {spec.name} connector needs at least one symbol")
        self.spec = spec
        self.exchange = spec.name
        self.symbols = list(dict.fromkeys(normalize(s) for s in symbols))
        self._emit = emit
        positions = {normalize(k): v for k, v in (start_positions or {}).items()}
        self.tracker = TradeIdTracker.from_positions(positions)
        # Id ranges missing below the stored positions: gaps found before a crash whose
        # back-fill never committed. They are fetched first thing, like any live gap.
        self._start_holes = [
            BackfillJob(normalize(symbol), lo, hi, "gap")
            for symbol, holes in (start_holes or {}).items()
            for lo, hi in holes
            if lo <= hi
        ]
        for symbol in self.symbols:
            self.tracker.track(symbol)
        self._supervisors: list[ConnectionSupervisor] = []
        self._subscriptions: dict[str, Subscription] = {}
        self._backfiller: Backfiller | None = None
        self._dead_letters = 0
        self._quiet = False  # stopping: live frames are left for the next start's back-fill

    # -- public ---------------------------------------------------------------------------

    async def run(self) -> None:
        spec, settings = self.spec, self.spec.settings
        try:
            await spec.prepare(self.symbols)
            history = spec.history() if spec.has_trade_ids else None
            if history is not None:
                self._backfiller = Backfiller(
                    history,
                    self.tracker,
                    self._emit,
                    exchange=self.exchange,
                    page_size=settings.backfill_page_size,
                    backoff_initial_s=settings.backoff_initial_s,
                    backoff_max_s=settings.backoff_max_s,
                )
                self._backfiller.submit(self._start_holes)
            subscriptions = spec.plan(self.symbols)
            # All connections share one pacer: a venue's message budget is per connection,
            # but staying under it in aggregate also keeps reconnect storms gentle.
            pacer = MessagePacer(settings.max_messages_per_second)
            timing = SupervisorTiming.from_settings(settings)
            self._subscriptions = {sub.name: sub for sub in subscriptions}
            self._supervisors = [
                ConnectionSupervisor(
                    sub.name,
                    sub.url,
                    self,
                    timing,
                    subscribe_messages=sub.messages,
                    pacer=pacer,
                    exchange=self.exchange,
                )
                for sub in subscriptions
            ]
            log.info(
                "%s connector: %d symbols on %d connections",
                self.exchange,
                len(self.symbols),
                len(subscriptions),
            )
            async with asyncio.TaskGroup() as group:
                if self._backfiller is not None:
                    group.create_task(self._backfiller.run(), name=f"{self.exchange}-backfill")
                for supervisor in self._supervisors:
                    group.create_task(supervisor.run(), name=supervisor.name)
        finally:
            with contextlib.suppress(Exception):
                await spec.aclose()

    def status(self) -> ConnectorStatus:
        connections = [
            ConnectionStatus(
                name=s.status.name,
                url=redact_url(s.status.url),
                connected=s.status.connected,
                connections_opened=s.status.connections_opened,
                frames=s.status.frames,
                reconnects=dict(s.status.reconnects),
                connect_failures=s.status.connect_failures,
                last_error=s.status.last_error,
            )
            for s in self._supervisors
        ]
        symbols = {
            t.symbol: SymbolStatus(
                last_trade_id=t.last_id,
                live_trades=t.live_trades,
                backfilled=t.backfilled,
                duplicates_dropped=t.duplicates,
                gaps_found=t.gaps_found,
                gaps_filled=t.gaps_filled,
                missing_ids=t.missing_ids,
            )
            for t in self.tracker.tracks.values()
        }
        return ConnectorStatus(
            connections_open=sum(c.connected for c in connections),
            connections=connections,
            symbols=symbols,
            reconnects=sum(sum(c.reconnects.values()) for c in connections),
            dead_letters=self._dead_letters,
            backfill_pending=self._backfiller.pending if self._backfiller else 0,
            started=bool(self._supervisors),
            exchange=self.exchange,
            has_trade_ids=self.spec.has_trade_ids,
        )

    @property
    def duplicates_dropped(self) -> int:
        """Live trades dropped, over all symbols, because their id was already forwarded."""
        return sum(track.duplicates for track in self.tracker.tracks.values())

    def quiesce(self) -> None:
        """Stop taking live frames (a clean stop is settling): no new gap can be found while
        the pending back-fills finish. The next start back-fills from the stored positions."""
        self._quiet = True

    # -- FeedHandler (called by the supervisors) -------------------------------------------

    async def on_connected(self, name: str, overlapped: bool) -> None:
        if overlapped or self._backfiller is None:
            return  # the old connection was still delivering: nothing was missed
        self._backfiller.submit(self.tracker.on_connected(self._subscriptions[name].symbols))

    async def on_frames(self, name: str, frames: Sequence[Frame]) -> str | None:
        if self._quiet:
            return None
        out: list[Trade | Quote | DeadLetter] = []
        gaps: list[BackfillJob] = []
        reconnect: str | None = None
        trades = quotes = 0
        by_id = self.spec.has_trade_ids
        for raw, recv_us in frames:
            try:
                parsed = self.spec.parse(raw, recv_us)
            except FrameError as exc:
                out.append(self._dead_letter(name, raw, recv_us, str(exc)))
                continue
            for record in parsed:
                if isinstance(record, Trade):
                    if not by_id:  # an id-less venue's keys are deduplicated downstream
                        self.tracker.track(record.symbol).live_trades += 1
                        out.append(record)
                        trades += 1
                        continue
                    forward, gap = self.tracker.on_live(record)
                    if forward:
                        out.append(record)
                        trades += 1
                    else:  # already forwarded, or overtaken (back-filled with the gap)
                        DUPLICATES.labels("source").inc()
                    if gap is not None:
                        gaps.append(gap)
                elif isinstance(record, Quote):
                    out.append(record)
                    quotes += 1
                else:
                    reconnect = self._on_control(name, record) or reconnect
        if out:
            await self._emit(out)
            if trades:
                PRODUCER_MESSAGES.labels(self.exchange, "trade").inc(trades)
            if quotes:
                PRODUCER_MESSAGES.labels(self.exchange, "quote").inc(quotes)
        # Submitted after the live trades went out, so the engine sees the newest id first.
        if gaps and self._backfiller is not None:
            self._backfiller.submit(gaps)
        return reconnect

    # -- internals ------------------------------------------------------------------------

    def _dead_letter(self, name: str, raw: bytes, recv_us: int, error: str) -> DeadLetter:
        self._dead_letters += 1
        DEAD_LETTERS.labels(self.exchange).inc()
        PRODUCER_ERRORS.labels(self.exchange, "bad_frame").inc()
        log.warning("dead-lettered frame on %s: %s", name, error)
        sub = self._subscriptions.get(name)
        url = sub.url if sub is not None else name
        return DeadLetter(
            ts=recv_us or time.time_ns() // 1000,
            source=self.exchange,
            error=error,
            raw=bytes(raw),
            context=f"ws:{name}:{redact_url(url)[:200]}",
        )

    def _on_control(self, name: str, control: Control) -> str | None:
        if control.kind == "server_shutdown":
            log.warning("%s: server announced shutdown; reconnecting", name)
            return "server_shutdown"
        if control.kind == "error":
            PRODUCER_ERRORS.labels(self.exchange, "ws_error").inc()
            log.error("%s: server error %s", name, control.body)
        else:
            log.debug("%s: control frame %s", name, control.body)
        return None
