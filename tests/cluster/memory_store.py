"""A ProcessorStore in memory (commit is trivially atomic): for tests of the Kafka side only.
The PostgreSQL store is used by the conformance and fault tests."""

import copy
from dataclasses import dataclass, field

from marketpipe.model.batch import CommitBatch
from marketpipe.model.records import Alert, Candle, Position


@dataclass
class MemoryProcessorStore:
    candle_map: dict[tuple[str, str, str, int], Candle] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    position_map: dict[tuple[str, str], Position] = field(default_factory=dict)
    offsets: dict[tuple[str, str, int], int] = field(default_factory=dict)
    dead_letters: list[object] = field(default_factory=list)
    commits: int = 0
    fences: dict[str, int] = field(default_factory=dict)

    def commit(
        self,
        batch: CommitBatch,
        *,
        consumer_group: str | None = None,
        offsets: dict[tuple[str, int], int] | None = None,
    ) -> None:
        for c in batch.candles:
            self.candle_map[(c.exchange, c.symbol, c.interval, c.open_time)] = c
        for a in batch.alerts:
            self.alerts.setdefault(a.alert_id, a)
        for p in batch.positions:
            self.position_map[(p.exchange, p.symbol)] = p
        for (topic, partition), offset in (offsets or {}).items():
            self.offsets[(consumer_group, topic, partition)] = offset
        self.dead_letters.extend(batch.dead_letters)
        self.commits += 1

    def load_offsets(self, consumer_group: str, topic: str) -> dict[int, int]:
        return {p: o for (g, t, p), o in self.offsets.items() if (g, t) == (consumer_group, topic)}

    def positions(self) -> list[Position]:
        return list(copy.deepcopy(self.position_map).values())

    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]:
        return [
            (c, c.open_time, c.close_time - 1)
            for c in self.candle_map.values()
            if c.close_time > min_close_time
        ]

    def commit_fenced(self, batch: CommitBatch, *, fence: tuple[str, int]) -> bool:
        name, batch_id = fence
        if self.fences.get(name, -1) >= batch_id:
            return False
        self.commit(batch, consumer_group="", offsets={})
        self.fences[name] = batch_id
        return True

    def fence(self, query_name: str) -> int | None:
        return self.fences.get(query_name)

    def candles(
        self, *, exchange: str | None, symbol: str | None, interval: str,
        start: int | None, end: int | None, limit: int | None,
    ) -> list[Candle]:  # fmt: skip
        return [
            c for c in self.candle_map.values()
            if c.interval == interval and (start is None or c.open_time >= start)
        ]  # fmt: skip
