"""Fencing a zombie native consumer (real Kafka; real PostgreSQL, and the BigQuery emulator).

Two NativeProcessor members share one group over four partitions. The first member to commit
is paused inside that commit (its store wrapper waits on an event) for longer than its
max.poll.interval.ms, so Kafka drops it from the group; the other member takes every
partition, claims them, re-reads the paused batch and more, and commits it all. Then the
zombie is released: its late commit must be refused and counted, and the warehouse must end
with the candles and positions of an uninterrupted single-member run (into a database of its
own on the same server). The negative control lets the same late commit through unfenced,
and shows it does overwrite newer data.

On BigQuery every statement costs 0.1-0.3 s on the emulator and a commit is some twenty, so
its members get a longer max.poll.interval.ms (a member's loop must fit in it, the zombie's
pause must exceed it) and every wait is stretched.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from deploy.kafka.broker import KafkaBroker

from marketpipe.bus.kafka import Topics
from marketpipe.cluster.archive import TradeArchiver, open_lake
from marketpipe.cluster.ingest import KafkaIngest
from marketpipe.cluster.native import EngineConfig, NativeProcessor
from marketpipe.cluster.stores import kafka_route
from marketpipe.config import Settings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import FencedOut
from marketpipe.model.records import Candle, Position
from marketpipe.observability.metrics import REGISTRY
from marketpipe.storage.bigquery_client import BigQueryLocation
from marketpipe.storage.bigquery_warm import BigQueryWarehouse, Route
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.cluster.cluster import (
    end_offsets,
    fresh_warehouse,
    results,
    rows_on_disk,
    synthetic_trades,
)
from tests.cluster.conformance import Key, by_key, differences
from tests.servers.bigquery import PROJECT
from tests.servers.scripts import ScriptServer, server_dir

pytestmark = pytest.mark.integration

GROUP = "fencing"
TRADES = 12_000  # 6 symbols over 5 minutes of event time
# The broker's group.min.session.timeout.ms is 6000; librdkafka wants max.poll >= session.
CONSUMER = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 7000}  # fmt: skip
# A BigQuery member's poll loop (a claim and restore, then a commit) takes up to ~10 s.
BIGQUERY_CONSUMER = {**CONSUMER, "max.poll.interval.ms": 25_000}

Warehouse = PostgresWarehouse | BigQueryWarehouse


@dataclass(frozen=True)
class Target:
    """One database of the warehouse under test, as the staged rebalance uses it."""

    label: str  # its `warehouse` label on warehouse_commits_fenced_total
    store: Warehouse  # the test's reads
    members: tuple[Warehouse, Warehouse]  # each member's client of the same database
    consumer: dict[str, object]
    patience: float  # waits are this many times PostgreSQL's
    poll_every_s: float  # how often the test reads while it waits
    settle_s: float  # idle rounds of both members after the last rebalance

    @property
    def pause_at_least_s(self) -> float:
        return float(self.consumer["max.poll.interval.ms"]) / 1000  # type: ignore[arg-type]


@contextmanager
def postgres_target(server: ScriptServer) -> Iterator[Target]:
    with fresh_warehouse(server) as store:  # one connection pool serves both members
        yield Target("postgres", store, (store, store), CONSUMER, 1.0, 0.1, 2.0)


@contextmanager
def bigquery_target(location: BigQueryLocation, route: Route) -> Iterator[Target]:
    # Raw trades are left out (as when the archive role stores them): their dedup is half of
    # a commit's statements, and the emulator's statement budget is short. Restoring needs
    # nothing from them: the candle row keeps its first and last trades' times.
    store, a, b = (BigQueryWarehouse(location, route=route, writes_trades=False)
                   for _ in range(3))  # fmt: skip
    store.migrate()
    try:
        yield Target("bigquery", store, (a, b), BIGQUERY_CONSUMER, 4.0, 2.0, 6.0)
    finally:
        for s in (store, a, b):
            s.close()


@contextmanager
def another_emulator(location: BigQueryLocation) -> Iterator[BigQueryLocation]:
    """The location's dataset on an emulator of its own: one emulator panics after some
    thousand statements (tests/servers/bigquery.py), and two runs' worth comes close."""
    server = ScriptServer("bigquery", server_dir("bigquery"), env={"BIGQUERY_PROJECT": PROJECT})
    server.start()
    try:
        yield replace(location, endpoint=server.url)
    finally:
        server.destroy()


@pytest.fixture(params=["postgres", "bigquery"])
def warehouse(
    request: pytest.FixtureRequest, kafka_broker: KafkaBroker, kafka_topics: Topics
) -> Callable[[str], AbstractContextManager[Target]]:
    """Opens a fresh, empty database of the warehouse for a role ("staged" or "reference"):
    on PostgreSQL both on the test's server; on BigQuery each on an emulator of its own, with
    a generous deadline per call."""
    if request.param == "postgres":
        server: ScriptServer = request.getfixturevalue("postgres_server")
        return lambda _role: postgres_target(server)
    location: BigQueryLocation = replace(request.getfixturevalue("bigquery_location"),
                                         timeout_s=120.0)  # fmt: skip
    route = kafka_route(kafka_broker.bootstrap, kafka_topics.trades)

    @contextmanager
    def open_bigquery(role: str) -> Iterator[Target]:
        if role == "staged":
            with bigquery_target(location, route) as target:
                yield target
        else:
            with another_emulator(location) as own, bigquery_target(own, route) as target:
                yield target

    return open_bigquery


@dataclass
class Hold:
    """Pauses the first commit that moves offsets (whichever member makes it), until
    `release`; then reports how that late commit went and waits for `resume`."""

    fencing: bool = True  # False: the late commit goes through without its fence
    group: str = GROUP  # only commits of this consumer group are held
    paused: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)
    holder: str | None = None
    late: dict[str, Any] = field(default_factory=dict)  # the held commit's arguments
    outcome: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, name: str) -> bool:
        with self.lock:
            if self.holder is None:
                self.holder = name
                return True
            return False


class PausableStore:
    """One member's view of the shared warehouse; its first data commit may be held."""

    def __init__(self, store: Warehouse, hold: Hold, name: str) -> None:
        self.store, self.hold, self.name = store, hold, name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.store, attr)

    def commit(self, batch: CommitBatch, **kw: Any) -> None:
        hold = self.hold
        held = kw.get("offsets") and kw.get("consumer_group") == hold.group
        if not (held and hold.take(self.name)):
            return self.store.commit(batch, **kw)
        hold.late = dict(kw)
        hold.paused.set()
        assert hold.release.wait(600), "never released"
        if not hold.fencing:
            kw["fence"] = None
        try:
            self.store.commit(batch, **kw)
        except BaseException as exc:
            hold.outcome = exc
            raise
        finally:
            hold.done.set()
            hold.resume.wait(60)


@dataclass(frozen=True)
class Snapshot:
    candles: dict[tuple[str, str, str, int], Candle]
    positions: list[Position]
    offsets: dict[int, int]
    windows: list[tuple[Candle, int, int]]  # every candle with its first and last trades' times
    counts: dict[str, int]  # rows per table


def trade_times(windows: list[tuple[Candle, int, int]]) -> list[tuple[Key, int, int]]:
    """Each restorable window (in snapshot order, every row the store gave) by its key, with
    the event times of its first and last trades."""
    return [((c.exchange, c.symbol, c.interval, c.open_time), first, last)
            for c, first, last in windows]  # fmt: skip


def stored_offsets(store: Warehouse, group: str, topic: str) -> dict[int, int]:
    """The group's offsets as stored. On BigQuery not by `load_offsets`: it first applies any
    batch stamped on the offsets but not yet applied, which is also a live member's commit
    between its commit point and the end of its apply; the test must not race that apply."""
    if isinstance(store, PostgresWarehouse):
        return store.load_offsets(group, topic)
    rows = store.rows(
        "SELECT kafka_partition, next_offset FROM consumer_offsets WHERE consumer_group = ? "
        "AND topic = ? AND next_offset IS NOT NULL",
        [group, topic],
    )
    return {int(p): int(o) for p, o in rows}


def snapshot(store: Warehouse, topics: Topics, group: str = GROUP) -> Snapshot:
    return Snapshot(
        results(store)[0],  # type: ignore[arg-type]
        store.positions(),
        stored_offsets(store, group, topics.trades),
        sorted(store.open_windows(0), key=lambda w: (w[0].exchange, w[0].symbol,
                                                     w[0].interval, w[0].open_time)),
        store.counts(),
    )  # fmt: skip


def wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)


def filled_ends(broker: KafkaBroker, topics: Topics) -> dict[int, int]:
    """End offsets of the trades partitions that hold messages (an empty one stores none)."""
    return {p: o for p, o in end_offsets(broker, topics.trades)().items() if o}


def fenced_count(warehouse: str = "postgres") -> float:
    labels = {"warehouse": warehouse, "consumer_group": GROUP}
    return REGISTRY.get_sample_value("warehouse_commits_fenced_total", labels) or 0.0


@dataclass
class Staged:
    zombie: NativeProcessor
    survivor: NativeProcessor
    hold: Hold
    before: Snapshot  # the survivor's finished work, just before the zombie's late commit
    after: Snapshot  # right after it
    errors: list[BaseException]
    timings: dict[str, float]  # seconds from the first ingest to each stage


@contextmanager
def staged_rebalance(
    settings: Settings, target: Target, broker: KafkaBroker, topics: Topics,
    *, fencing: bool, all_produced: Callable[[], None] = lambda: None,
) -> Iterator[Staged]:  # fmt: skip
    hold = Hold(fencing=fencing)
    patience, every = target.patience, target.poll_every_s
    store = target.store
    config = EngineConfig(settings.alerts, idle_after_s=1.0)
    members = {
        name: NativeProcessor(config, PausableStore(view, hold, name), broker.bootstrap,  # type: ignore[arg-type]
                              topics, GROUP, consumer_config=target.consumer)
        for name, view in zip(("a", "b"), target.members, strict=True)
    }  # fmt: skip
    errors: list[BaseException] = []

    def run(member: NativeProcessor) -> None:
        try:
            member.run(max_seconds=150 * patience)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in members.values()]
    for t in threads:
        t.start()
    everything = {(t, p) for t in (topics.trades, topics.quotes) for p in range(4)}
    timings: dict[str, float] = {}
    try:

        def both_in_group() -> bool:
            held = [m.consumer.assignment for m in members.values()]
            return all(held) and set().union(*held) == everything

        wait_for(both_in_group, 60 * patience, "both members in the group")
        trades = synthetic_trades(TRADES, trades_per_second=40.0)
        ingest = KafkaIngest(broker.bootstrap, topics)
        started = time.monotonic()
        ingest.trade_table(trades.slice(0, TRADES // 2))
        ingest.flush()
        assert hold.paused.wait(60 * patience), "no member committed"
        paused_at = time.monotonic()
        timings["paused"] = paused_at - started
        zombie = members[hold.holder or ""]
        [survivor] = [m for m in members.values() if m is not zombie]
        # The rest arrives while the zombie sleeps: the windows it holds get newer trades.
        ingest.trade_table(trades.slice(TRADES // 2))
        ingest.flush()
        all_produced()
        wait_for(lambda: survivor.consumer.assignment == everything, 60 * patience,
                 "the takeover")  # fmt: skip
        timings["taken over"] = time.monotonic() - started
        ends = filled_ends(broker, topics)
        wait_for(
            lambda: stored_offsets(store, GROUP, topics.trades) == ends
            and all(w[0].is_final for w in store.open_windows(0)),
            60 * patience, "the survivor to finish", every,
        )  # fmt: skip
        timings["survivor done"] = time.monotonic() - started
        before = snapshot(store, topics)
        # past max.poll.interval.ms
        assert time.monotonic() - paused_at >= target.pause_at_least_s
        hold.release.set()
        assert hold.done.wait(30 * patience)
        timings["late commit done"] = time.monotonic() - started
        after = snapshot(store, topics)
        hold.resume.set()
        yield Staged(zombie, survivor, hold, before, after, errors, timings)
    finally:
        hold.release.set()
        hold.resume.set()
        for m in members.values():
            m.stop()
        for t in threads:
            t.join(60 * patience)


def test_a_zombie_members_late_commit_is_refused_and_the_result_equals_an_uninterrupted_run(
    kafka_broker: KafkaBroker, kafka_topics: Topics,
    warehouse: Callable[[str], AbstractContextManager[Target]], settings: Settings,
) -> None:  # fmt: skip
    with warehouse("staged") as target, warehouse("reference") as alone:
        counted = fenced_count(target.label)
        patience = target.patience
        # The uninterrupted run: one member of its own group, its own database, the same
        # topics; it runs while the staged pair waits out the pause.
        config = EngineConfig(settings.alerts, idle_after_s=1.0)
        single = NativeProcessor(config, alone.store, kafka_broker.bootstrap, kafka_topics,
                                 "reference")  # fmt: skip
        uninterrupted = threading.Thread(
            target=lambda: single.run(until_idle=True, max_seconds=120 * patience)
        )
        with staged_rebalance(settings, target, kafka_broker, kafka_topics, fencing=True,
                              all_produced=uninterrupted.start) as run:  # fmt: skip
            assert isinstance(run.hold.outcome, FencedOut)
            assert run.after == run.before  # the refused commit changed nothing
            wait_for(lambda: run.zombie.totals.fenced == 1, 10 * patience, "the zombie to take it")
            assert fenced_count(target.label) == counted + 1
            # Released, the zombie rejoins, rebuilds from the store and shares the work.
            ends = filled_ends(kafka_broker, kafka_topics)
            wait_for(lambda: run.zombie.consumer.assignment and run.zombie.totals.rebalances >= 2,
                     60 * patience, "the zombie's fresh assignment")  # fmt: skip
            time.sleep(target.settle_s)  # idle rounds of both members: nothing left to change
            final = snapshot(target.store, kafka_topics)
        assert run.errors == []
        assert run.zombie.totals.fenced == 1 and run.survivor.totals.fenced == 0
        uninterrupted.join(120 * patience)
        assert not uninterrupted.is_alive() and single.totals.fenced == 0
        reference = snapshot(alone.store, kafka_topics, "reference")
    print(f"{target.label}: {run.timings}")  # shown with -s: where the time goes
    assert final.offsets == reference.offsets == ends
    assert len(final.candles) == len(reference.candles) > 6 * 5  # every interval, 6 symbols
    assert differences(final.candles, reference.candles) == []
    assert [c.revision for c in final.candles.values()] == [
        reference.candles[k].revision for k in final.candles
    ]
    assert final.positions == reference.positions
    # What the next owner would restore: each window's first and last trades' times exactly,
    # and its candle as compared above (sums are float additions in batch order).
    assert trade_times(final.windows) == trade_times(reference.windows)
    assert differences(by_key(w[0] for w in final.windows),
                       by_key(w[0] for w in reference.windows)) == []  # fmt: skip
    assert final.counts == reference.counts


def test_without_the_fence_the_same_late_commit_overwrites_newer_candles(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer,
    settings: Settings,
) -> None:  # fmt: skip
    """The negative control: the scenario above really produces a stale write, so its test
    can fail."""
    with (
        postgres_target(postgres_server) as target,
        staged_rebalance(settings, target, kafka_broker, kafka_topics, fencing=False) as run,
    ):
        assert run.hold.outcome is None  # it landed
        time.sleep(0.5)  # the zombie carries on as if nothing happened
        assert run.zombie.totals.fenced == 0
        stale = run.after
    regressed = [p for p, o in stale.offsets.items() if o < run.before.offsets[p]]
    assert regressed  # its partitions' offsets moved back
    assert differences(stale.candles, run.before.candles)  # and newer candles were replaced
    assert any(not c.is_final for c in stale.candles.values())
    assert stale.positions != run.before.positions


def test_a_zombie_archivers_late_commit_is_refused_so_offsets_never_move_back(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The archive role, staged the same way: the paused member planned its range and wrote
    it to the lake, then stalls before its PostgreSQL commit; the survivor redoes that range
    and goes on; the late commit, which would move the offsets back, is refused."""
    group = "archive-fencing"
    hold = Hold(group=group)
    lake = open_lake(str(tmp_path / "lake"))
    trades = synthetic_trades(TRADES, trades_per_second=40.0)
    everything = {(kafka_topics.trades, p) for p in range(4)}
    with fresh_warehouse(postgres_server) as store:
        members = {
            name: TradeArchiver(PausableStore(store, hold, name), lake, kafka_broker.bootstrap,  # type: ignore[arg-type]
                                kafka_topics, group=group, range_messages=2000,
                                range_max_age_s=0.5, consumer_config=CONSUMER)
            for name in ("a", "b")
        }  # fmt: skip
        errors: list[BaseException] = []

        def run(member: TradeArchiver) -> None:
            try:
                member.run(max_seconds=120)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(m,)) for m in members.values()]
        for t in threads:
            t.start()
        try:
            held = lambda: [m.consumer.assignment for m in members.values()]  # noqa: E731
            wait_for(lambda: all(held()) and set().union(*held()) == everything, 60, "the group")
            ingest = KafkaIngest(kafka_broker.bootstrap, kafka_topics)
            ingest.trade_table(trades.slice(0, TRADES // 2))
            ingest.flush()
            assert hold.paused.wait(60), "no member committed"
            zombie = members[hold.holder or ""]
            [survivor] = [m for m in members.values() if m is not zombie]
            ingest.trade_table(trades.slice(TRADES // 2))
            ingest.flush()
            wait_for(lambda: survivor.consumer.assignment == everything, 60, "the takeover")
            ends = filled_ends(kafka_broker, kafka_topics)
            wait_for(lambda: store.load_offsets(group, kafka_topics.trades) == ends, 60,
                     "the survivor to finish")  # fmt: skip
            assert survivor.totals.redone >= 1  # the zombie's planned range, redone
            # Had it landed, the late commit would have moved these offsets back.
            late = {p: o for (_, p), o in hold.late["offsets"].items()}
            assert all(o < ends[p] for p, o in late.items())
            hold.release.set()
            assert hold.done.wait(30)
            assert isinstance(hold.outcome, FencedOut)
            assert store.load_offsets(group, kafka_topics.trades) == ends
            hold.resume.set()
            wait_for(lambda: zombie.totals.fenced == 1, 10, "the zombie to take it")
        finally:
            hold.release.set()
            hold.resume.set()
            for m in members.values():
                m.stop()
            for t in threads:
                t.join(60)
        assert errors == []
        expected = sorted(trades.column("trade_id").to_pylist())
        warm = store.trades(exchange=None, symbol=None, start=None, end=None, limit=None)
        assert sorted(t.trade_id for t in warm) == expected
        assert sorted(lake.read_trades().column("trade_id").to_pylist()) == expected
        assert rows_on_disk(lake) == len(expected)  # nothing written twice
