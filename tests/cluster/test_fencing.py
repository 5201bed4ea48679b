"""Fencing a zombie native consumer (real Kafka, real PostgreSQL).

Two NativeProcessor members share one group over four partitions. The first member to commit
is paused inside that commit (its store wrapper waits on an event) for longer than its
max.poll.interval.ms, so Kafka drops it from the group; the other member takes every
partition, claims them, re-reads the paused batch and more, and commits it all. Then the
zombie is released: its late commit must be refused and counted, and PostgreSQL must end
with the candles and positions of an uninterrupted single-member run. The negative control
lets the same late commit through unfenced, and shows it does overwrite newer data.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deploy.kafka.broker import KafkaBroker

from marketpipe.bus.kafka import Topics
from marketpipe.cluster.archive import TradeArchiver, open_lake
from marketpipe.cluster.ingest import KafkaIngest
from marketpipe.cluster.native import EngineConfig, NativeProcessor
from marketpipe.config import Settings
from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import FencedOut
from marketpipe.model.records import Candle, Position
from marketpipe.observability.metrics import REGISTRY
from marketpipe.storage.postgres_warm import PostgresWarehouse
from tests.cluster.cluster import (
    end_offsets,
    fresh_warehouse,
    results,
    rows_on_disk,
    synthetic_trades,
)
from tests.cluster.conformance import differences
from tests.servers.scripts import ScriptServer

pytestmark = pytest.mark.integration

GROUP = "fencing"
TRADES = 12_000  # 6 symbols over 5 minutes of event time
# The broker's group.min.session.timeout.ms is 6000; librdkafka wants max.poll >= session.
CONSUMER = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 7000}  # fmt: skip
PAUSE_AT_LEAST_S = 7.0


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

    def __init__(self, store: PostgresWarehouse, hold: Hold, name: str) -> None:
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
        assert hold.release.wait(120), "never released"
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


def snapshot(store: PostgresWarehouse, topics: Topics, group: str = GROUP) -> Snapshot:
    return Snapshot(results(store)[0], store.positions(), store.load_offsets(group, topics.trades))


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def filled_ends(broker: KafkaBroker, topics: Topics) -> dict[int, int]:
    """End offsets of the trades partitions that hold messages (an empty one stores none)."""
    return {p: o for p, o in end_offsets(broker, topics.trades)().items() if o}


def fenced_count() -> float:
    labels = {"warehouse": "postgres", "consumer_group": GROUP}
    return REGISTRY.get_sample_value("warehouse_commits_fenced_total", labels) or 0.0


@dataclass
class Staged:
    zombie: NativeProcessor
    survivor: NativeProcessor
    hold: Hold
    before: Snapshot  # the survivor's finished work, just before the zombie's late commit
    after: Snapshot  # right after it
    errors: list[BaseException]


@contextmanager
def staged_rebalance(
    settings: Settings, store: PostgresWarehouse, broker: KafkaBroker, topics: Topics,
    *, fencing: bool, all_produced: Callable[[], None] = lambda: None,
) -> Iterator[Staged]:  # fmt: skip
    hold = Hold(fencing=fencing)
    config = EngineConfig(settings.alerts, idle_after_s=1.0)
    members = {
        name: NativeProcessor(config, PausableStore(store, hold, name), broker.bootstrap,  # type: ignore[arg-type]
                              topics, GROUP, consumer_config=CONSUMER)
        for name in ("a", "b")
    }  # fmt: skip
    errors: list[BaseException] = []

    def run(member: NativeProcessor) -> None:
        try:
            member.run(max_seconds=150)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in members.values()]
    for t in threads:
        t.start()
    everything = {(t, p) for t in (topics.trades, topics.quotes) for p in range(4)}
    try:

        def both_in_group() -> bool:
            held = [m.consumer.assignment for m in members.values()]
            return all(held) and set().union(*held) == everything

        wait_for(both_in_group, 60, "both members in the group")
        trades = synthetic_trades(TRADES, trades_per_second=40.0)
        ingest = KafkaIngest(broker.bootstrap, topics)
        ingest.trade_table(trades.slice(0, TRADES // 2))
        ingest.flush()
        assert hold.paused.wait(60), "no member committed"
        paused_at = time.monotonic()
        zombie = members[hold.holder or ""]
        [survivor] = [m for m in members.values() if m is not zombie]
        # The rest arrives while the zombie sleeps: the windows it holds get newer trades.
        ingest.trade_table(trades.slice(TRADES // 2))
        ingest.flush()
        all_produced()
        wait_for(lambda: survivor.consumer.assignment == everything, 60, "the takeover")
        ends = filled_ends(broker, topics)
        wait_for(
            lambda: store.load_offsets(GROUP, topics.trades) == ends
            and all(c.is_final for c in results(store)[0].values()),
            60, "the survivor to finish",
        )  # fmt: skip
        before = snapshot(store, topics)
        assert time.monotonic() - paused_at >= PAUSE_AT_LEAST_S  # past max.poll.interval.ms
        hold.release.set()
        assert hold.done.wait(30)
        after = snapshot(store, topics)
        hold.resume.set()
        yield Staged(zombie, survivor, hold, before, after, errors)
    finally:
        hold.release.set()
        hold.resume.set()
        for m in members.values():
            m.stop()
        for t in threads:
            t.join(60)


def test_a_zombie_members_late_commit_is_refused_and_the_result_equals_an_uninterrupted_run(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer,
    settings: Settings,
) -> None:  # fmt: skip
    counted = fenced_count()
    with fresh_warehouse(postgres_server) as store, fresh_warehouse(postgres_server) as alone:
        # The uninterrupted run: one member of its own group, its own database, the same
        # topics; it runs while the staged pair waits out the pause.
        config = EngineConfig(settings.alerts, idle_after_s=1.0)
        single = NativeProcessor(config, alone, kafka_broker.bootstrap, kafka_topics, "reference")
        uninterrupted = threading.Thread(
            target=lambda: single.run(until_idle=True, max_seconds=120)
        )
        with staged_rebalance(settings, store, kafka_broker, kafka_topics, fencing=True,
                              all_produced=uninterrupted.start) as run:  # fmt: skip
            assert isinstance(run.hold.outcome, FencedOut)
            assert run.after == run.before  # the refused commit changed nothing
            wait_for(lambda: run.zombie.totals.fenced == 1, 10, "the zombie to take it")
            assert fenced_count() == counted + 1
            # Released, the zombie rejoins, rebuilds from the store and shares the work.
            ends = filled_ends(kafka_broker, kafka_topics)
            wait_for(lambda: run.zombie.consumer.assignment and run.zombie.totals.rebalances >= 2,
                     60, "the zombie's fresh assignment")  # fmt: skip
            time.sleep(2 * 1.0)  # idle rounds of both members: nothing left to change
            final = snapshot(store, kafka_topics)
        assert run.errors == []
        assert run.zombie.totals.fenced == 1 and run.survivor.totals.fenced == 0
        uninterrupted.join(120)
        assert not uninterrupted.is_alive() and single.totals.fenced == 0
        reference = snapshot(alone, kafka_topics, "reference")
    assert final.offsets == reference.offsets == ends
    assert len(final.candles) == len(reference.candles) > 6 * 5  # every interval, 6 symbols
    assert differences(final.candles, reference.candles) == []
    assert [c.revision for c in final.candles.values()] == [
        reference.candles[k].revision for k in final.candles
    ]
    assert final.positions == reference.positions


def test_without_the_fence_the_same_late_commit_overwrites_newer_candles(
    kafka_broker: KafkaBroker, kafka_topics: Topics, postgres_server: ScriptServer,
    settings: Settings,
) -> None:  # fmt: skip
    """The negative control: the scenario above really produces a stale write, so its test
    can fail."""
    with (
        fresh_warehouse(postgres_server) as store,
        staged_rebalance(settings, store, kafka_broker, kafka_topics, fencing=False) as run,
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
