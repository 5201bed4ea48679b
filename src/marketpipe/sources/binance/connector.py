"""The Binance spot connector: live trades and best quotes, gap-free by trade id.

Wiring only: `streams` plans the shards, `ConnectionSupervisor` keeps each shard's WebSocket
alive, `frames.parse_frame` turns frames into records, `TradeIdTracker` spots gaps and
`Backfiller` fetches what is missing over REST. Records go out through `emit` in small lists
(one per batch of frames read together), so per-record overhead stays low.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from marketpipe.model.errors import FrameError, SourceError
from marketpipe.model.records import DeadLetter, Quote, Trade
from marketpipe.model.symbols import SymbolMap, normalize
from marketpipe.observability.metrics import (
    DEAD_LETTERS,
    DUPLICATES,
    PRODUCER_ERRORS,
    PRODUCER_MESSAGES,
)
from marketpipe.sources.binance.backfill import Backfiller
from marketpipe.sources.binance.frames import Control, parse_frame
from marketpipe.sources.binance.rest import BinanceRestClient
from marketpipe.sources.binance.settings import BinanceSettings
from marketpipe.sources.binance.streams import Shard, plan_shards
from marketpipe.sources.binance.tracker import BackfillJob, TradeIdTracker
from marketpipe.sources.ratelimit import MessagePacer
from marketpipe.sources.supervisor import ConnectionSupervisor, Frame, SupervisorTiming

log = logging.getLogger(__name__)

EXCHANGE: Final = "binance"
EXCHANGE_INFO_ATTEMPTS: Final = 2
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


class BinanceConnector:
    """Streams `<sym>@trade` and `<sym>@bookTicker` for `symbols` and back-fills trade gaps.

    `start_positions` maps a normalized symbol to the last trade id stored before a restart;
    the connector back-fills from the id after it. `run()` runs until cancelled and never
    raises for bad input or unreachable servers: it logs, counts and retries.
    """

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
        self.settings = settings
        self.symbols = list(dict.fromkeys(normalize(s) for s in symbols))
        self._emit = emit
        self._symbol_map = symbol_map
        self._rest = rest
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
        self._shards: dict[str, Shard] = {}
        self._backfiller: Backfiller | None = None
        self._dead_letters = 0
        self._quiet = False  # stopping: live frames are left for the next start's back-fill

    # -- public ---------------------------------------------------------------------------

    async def run(self) -> None:
        rest = self._rest or BinanceRestClient(self.settings)
        try:
            symbol_map = self._symbol_map or await self._load_symbol_map(rest)
            rest.symbol_map = symbol_map
            self._symbol_map = symbol_map
            self._backfiller = Backfiller(
                rest,
                self.tracker,
                symbol_map,
                self._emit,
                page_size=self.settings.backfill_page_size,
                backoff_initial_s=self.settings.backoff_initial_s,
                backoff_max_s=self.settings.backoff_max_s,
            )
            self._backfiller.submit(self._start_holes)
            shards = plan_shards(
                self.settings.ws_url,
                self.symbols,
                symbol_map,
                self.settings.max_streams_per_connection,
            )
            # All connections share one pacer: the 5 messages/s figure is per connection, but
            # staying under it in aggregate also keeps reconnect storms gentle.
            pacer = MessagePacer(self.settings.max_messages_per_second)
            timing = SupervisorTiming.from_settings(self.settings)
            self._shards = {shard.name: shard for shard in shards}
            self._supervisors = [
                ConnectionSupervisor(
                    shard.name,
                    shard.url,
                    self,
                    timing,
                    subscribe_messages=shard.subscribe_messages,
                    pacer=pacer,
                    exchange=EXCHANGE,
                )
                for shard in shards
            ]
            log.info(
                "binance connector: %d symbols on %d connections", len(self.symbols), len(shards)
            )
            async with asyncio.TaskGroup() as group:
                group.create_task(self._backfiller.run(), name="binance-backfill")
                for supervisor in self._supervisors:
                    group.create_task(supervisor.run(), name=supervisor.name)
        finally:
            if self._rest is None:
                with contextlib.suppress(Exception):
                    await rest.aclose()

    def status(self) -> ConnectorStatus:
        connections = [
            ConnectionStatus(
                name=s.status.name,
                url=s.status.url,
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
        )

    @property
    def duplicates_dropped(self) -> int:
        """Live trades dropped, over all symbols, because their id was already forwarded."""
        return sum(track.duplicates for track in self.tracker.tracks.values())

    # -- FeedHandler (called by the supervisors) -------------------------------------------

    async def on_connected(self, name: str, overlapped: bool) -> None:
        if overlapped or self._backfiller is None:
            return  # the old connection was still delivering: nothing was missed
        self._backfiller.submit(self.tracker.on_connected(self._shards[name].symbols))

    def quiesce(self) -> None:
        """Stop taking live frames (a clean stop is settling): no new gap can be found while
        the pending back-fills finish. The next start back-fills from the stored positions."""
        self._quiet = True

    async def on_frames(self, name: str, frames: Sequence[Frame]) -> str | None:
        assert self._symbol_map is not None and self._backfiller is not None
        if self._quiet:
            return None
        out: list[Trade | Quote | DeadLetter] = []
        gaps: list[BackfillJob] = []
        reconnect: str | None = None
        trades = quotes = 0
        for raw, recv_us in frames:
            try:
                record = parse_frame(raw, self._symbol_map, recv_us)
            except FrameError as exc:
                out.append(self._dead_letter(name, raw, recv_us, str(exc)))
                continue
            if isinstance(record, Trade):
                forward, gap = self.tracker.on_live(record)
                if forward:
                    out.append(record)
                    trades += 1
                else:  # already forwarded, or overtaken (its id is back-filled with the gap)
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
                PRODUCER_MESSAGES.labels(EXCHANGE, "trade").inc(trades)
            if quotes:
                PRODUCER_MESSAGES.labels(EXCHANGE, "quote").inc(quotes)
        # Submitted after the live trades went out, so the engine sees the newest id first.
        if gaps:
            self._backfiller.submit(gaps)
        return reconnect

    # -- internals ------------------------------------------------------------------------

    async def _load_symbol_map(self, rest: BinanceRestClient) -> SymbolMap:
        natives = [s.replace("-", "") for s in self.symbols]
        # Few attempts: the WebSocket waits for this, and an unreachable venue must be told
        # to the user within seconds; without exchangeInfo, known quotes split the symbols.
        probe = (
            rest
            if self._rest is not None
            else BinanceRestClient(self.settings, max_attempts=EXCHANGE_INFO_ATTEMPTS)
        )
        try:
            async with asyncio.timeout(self.settings.rest_timeout_s):
                symbol_map = await probe.symbol_map_from_exchange_info(natives)
        except (SourceError, TimeoutError, ValueError, KeyError) as exc:
            PRODUCER_ERRORS.labels(EXCHANGE, "exchange_info").inc()
            log.warning("exchangeInfo unavailable (%s); splitting symbols by known quotes", exc)
            return SymbolMap()
        finally:
            if probe is not rest:
                await probe.aclose()
        # exchangeInfo may not know every requested symbol; they still map via `normalize`.
        return symbol_map

    def _dead_letter(self, name: str, raw: bytes, recv_us: int, error: str) -> DeadLetter:
        self._dead_letters += 1
        DEAD_LETTERS.labels(EXCHANGE).inc()
        PRODUCER_ERRORS.labels(EXCHANGE, "bad_frame").inc()
        log.warning("dead-lettered frame on %s: %s", name, error)
        url = self._shards[name].url if name in self._shards else name
        return DeadLetter(
            ts=recv_us or time.time_ns() // 1000,
            source=EXCHANGE,
            error=error,
            raw=bytes(raw),
            context=f"ws:{name}:{url[:200]}",
        )

    def _on_control(self, name: str, control: Control) -> str | None:
        if control.kind == "server_shutdown":
            log.warning("%s: server announced shutdown; reconnecting", name)
            return "server_shutdown"
        if control.kind == "error":
            PRODUCER_ERRORS.labels(EXCHANGE, "ws_error").inc()
            log.error("%s: server error %s", name, control.body)
        else:
            log.debug("%s: control frame %s", name, control.body)
        return None
