"""The in-process bus: sources publish lists of records, the engine drains micro-batches."""

import asyncio
import time
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class MemoryBus(Generic[T]):
    """An asyncio queue of record lists with micro-batch draining.

    Bounded, so a stalled consumer pushes back on sources instead of growing memory.
    """

    def __init__(self, max_pending_lists: int = 10_000) -> None:
        self._queue: asyncio.Queue[Sequence[T]] = asyncio.Queue(max_pending_lists)

    async def publish(self, records: Sequence[T]) -> None:
        if records:
            await self._queue.put(records)

    def pending(self) -> int:
        return self._queue.qsize()

    async def drain(self, max_items: int, max_delay_s: float, idle_timeout_s: float) -> list[T]:
        """Wait up to `idle_timeout_s` for the first record, then gather more for at most
        `max_delay_s` or until `max_items`. Returns [] when idle."""
        try:
            first = await asyncio.wait_for(self._queue.get(), idle_timeout_s)
        except TimeoutError:
            return []
        batch = list(first)
        deadline = time.perf_counter() + max_delay_s
        while len(batch) < max_items:
            try:
                batch.extend(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.extend(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch
