"""Store outages that must not fail a role.

The warm store is waited out: a commit that fails rolled back entirely (one transaction), so
retrying the same batch is safe; the in-memory engine state it came from is kept, nothing is
recomputed or lost. The hot tier is best effort: it is written after the warm commit, and a
batch it misses makes it drop the series concerned on its next apply, so readers fall back to
the warm store instead of seeing a hole.
"""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from marketpipe.model.errors import StorageError

log = logging.getLogger(__name__)
T = TypeVar("T")


def until_stored(action: Callable[[], T], *, give_up_s: float = 900.0) -> T:
    """Run `action`, retrying StorageError with capped backoff for up to `give_up_s`."""
    deadline = time.monotonic() + give_up_s
    delay = 0.25
    while True:
        try:
            return action()
        except StorageError as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning(
                "warm store unavailable, retrying",
                extra={"error": str(exc)[:300], "retry_in_s": delay},
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def best_effort(action: Callable[[], object], what: str) -> bool:
    """Run `action`; a StorageError is logged and reported as False instead of raised."""
    try:
        action()
    except StorageError as exc:
        log.warning("%s unavailable, skipped", what, extra={"error": str(exc)[:300]})
        return False
    return True
