"""Frame-sent -> candle-committed latencies from commit-hook records and exchange send times."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from marketpipe.model.batch import CommitBatch

SendTimes = dict[tuple[str, int], int]


@dataclass(slots=True)
class CommitLog:
    """A `CommitHook` that only copies ids out: it runs on the pipeline's commit path."""

    commits: list[tuple[int, list[str], list[int]]] = field(default_factory=list)

    def __call__(self, batch: CommitBatch, done_ns: int) -> None:
        trades = batch.trades
        if trades.num_rows:
            symbols = trades.column("symbol").to_pylist()
            ids = trades.column("trade_id").to_pylist()
            self.commits.append((done_ns, symbols, ids))


def latencies_ms(
    log: CommitLog, sent_ns: SendTimes, since_ns: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Latency of each committed trade first sent at or after `since_ns` (the warm-up end).

    Trades without a send time came by REST back-fill; they are counted, not measured.
    """
    out: list[int] = []
    skipped = {"warmup": 0, "no_send_time": 0, "negative": 0}
    for done_ns, symbols, ids in log.commits:
        for key in zip(symbols, ids, strict=True):
            sent = sent_ns.get(key)
            if sent is None:
                skipped["no_send_time"] += 1
            elif sent < since_ns:
                skipped["warmup"] += 1
            elif done_ns < sent:  # committed from REST before its frame went out
                skipped["negative"] += 1
            else:
                out.append(done_ns - sent)
    return np.asarray(out, dtype=np.float64) / 1e6, skipped


def summarize(ms: np.ndarray) -> dict[str, Any]:
    if not ms.size:
        return {"samples": 0, "p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}
    p50, p99, p999 = np.percentile(ms, [50, 99, 99.9]).tolist()
    return {
        "samples": int(ms.size),
        "p50_ms": round(p50, 3),
        "p99_ms": round(p99, 3),
        "p999_ms": round(p999, 3),
        "max_ms": round(float(ms.max()), 3),
        "mean_ms": round(float(ms.mean()), 3),
    }


def measured_keys(
    log: CommitLog, sent_ns: SendTimes, pushed_ns: dict[tuple[str, int], int], since_ns: int
) -> Iterator[tuple[str, int]]:
    """The (symbol, trade id) of each trade `push_latencies_ms` measures, in its order."""
    for _, key, _, _ in _pushes(log, sent_ns, pushed_ns, since_ns):
        yield key


def _pushes(
    log: CommitLog, sent_ns: SendTimes, pushed_ns: dict[tuple[str, int], int], since_ns: int
) -> Iterator[tuple[int, tuple[str, int], int, int]]:
    """(committed, key, sent, received) of each committed trade sent after warm-up that a
    client received."""
    for done_ns, symbols, ids in log.commits:
        for key in zip(symbols, ids, strict=True):
            sent = sent_ns.get(key)
            got = pushed_ns.get(key)
            if sent is None or got is None or sent < since_ns or got < sent:
                continue
            yield done_ns, key, sent, got


def push_latencies_ms(
    log: CommitLog, sent_ns: SendTimes, pushed_ns: dict[tuple[str, int], int], since_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """(frame sent -> WebSocket frame received, commit -> received) for each committed trade
    sent after warm-up that a client received. Commit -> received is negative for a push
    that arrived before its commit returned (a provisional push)."""
    to_push: list[int] = []
    commit_to_push: list[int] = []
    for done_ns, _, sent, got in _pushes(log, sent_ns, pushed_ns, since_ns):
        to_push.append(got - sent)
        commit_to_push.append(got - done_ns)
    scale = 1e6
    return np.asarray(to_push, dtype=np.float64) / scale, np.asarray(
        commit_to_push, dtype=np.float64
    ) / scale
