"""Waiting out a warm store outage instead of failing the role.

A commit that fails rolled back entirely (one transaction), so retrying the same batch is
safe; the in-memory engine state it came from is kept, nothing is recomputed or lost.
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
