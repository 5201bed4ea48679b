"""RestRetry, the loop every venue's REST client shares: how many attempts, which failures are
repeated, the backoff between them, and a rate limit's pause holding every request."""

import asyncio
import time

import pytest

from marketpipe.model.errors import SourceError
from marketpipe.sources.rest_retry import RestRetry, Retryable

pytestmark = pytest.mark.unit


class Script:
    """An attempt that fails with the given exceptions in turn, then answers `"ok"`."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.at: list[float] = []  # monotonic time of each attempt

    async def __call__(self) -> str:
        self.calls += 1
        self.at.append(time.monotonic())
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_a_first_success_is_returned_after_one_attempt() -> None:
    once = Script()
    assert await RestRetry(5, 0.01, 0.01).call("/x", once) == "ok"
    assert once.calls == 1


async def test_retryable_failures_are_repeated_until_one_succeeds() -> None:
    once = Script(Retryable("HTTP 503"), Retryable("ConnectError"))
    assert await RestRetry(3, 0.001, 0.001).call("/x", once) == "ok"
    assert once.calls == 3


async def test_running_out_of_attempts_names_the_path_and_the_last_failure() -> None:
    once = Script(Retryable("HTTP 500"), Retryable("HTTP 502"), Retryable("never reached"))
    with pytest.raises(SourceError, match=r"GET /api/v3/x failed after 2 attempts: HTTP 502$"):
        await RestRetry(2, 0.001, 0.001).call("/api/v3/x", once)
    assert once.calls == 2


async def test_one_attempt_means_no_retry() -> None:
    once = Script(Retryable("HTTP 500"))
    with pytest.raises(SourceError, match="after 1 attempts"):
        await RestRetry(1, 0.001, 0.001).call("/x", once)
    assert once.calls == 1


async def test_a_failure_not_worth_repeating_is_raised_at_once() -> None:
    once = Script(SourceError("HTTP 404"), Retryable("unused"))
    with pytest.raises(SourceError, match=r"^HTTP 404$"):
        await RestRetry(5, 0.001, 0.001).call("/x", once)
    assert once.calls == 1


async def test_backoff_between_attempts_doubles_within_jitter_and_none_follows_the_last() -> None:
    # backoff_delay: initial * 2**attempt, scaled into [0.5, 1.0): 0.05-0.1 s, then 0.1-0.2 s.
    once = Script(Retryable("a"), Retryable("b"), Retryable("c"))
    started = time.monotonic()
    with pytest.raises(SourceError):
        await RestRetry(3, 0.1, 10.0).call("/x", once)
    ended = time.monotonic()
    first, second = once.at[1] - once.at[0], once.at[2] - once.at[1]
    assert 0.05 <= first < 0.15 and 0.1 <= second < 0.25, (first, second)
    assert ended - once.at[2] < 0.04  # the last failure is raised without a wait
    assert ended - started < 0.4


async def test_backoff_is_capped_at_its_maximum() -> None:
    once = Script(Retryable("a"), Retryable("b"), Retryable("c"))
    await RestRetry(4, 0.05, 0.06).call("/x", once)
    gaps = [b - a for a, b in zip(once.at, once.at[1:], strict=False)]
    assert all(0.025 <= g < 0.1 for g in gaps), gaps  # 2**attempt stopped at max_s


async def test_a_rate_limit_pause_replaces_the_backoff() -> None:
    retry = RestRetry(3, 30.0, 30.0)  # a backoff would make this test take 15 s or more

    async def limited_once() -> str:
        if not limited.at:
            limited.at.append(time.monotonic())
            retry.block_for(0.2)
            raise Retryable("HTTP 429", pause_s=0.2)
        limited.at.append(time.monotonic())
        return "ok"

    limited = Script()
    assert await retry.call("/x", limited_once) == "ok"
    assert 0.19 <= limited.at[1] - limited.at[0] < 1.0


async def test_a_rate_limit_holds_every_request_of_the_client() -> None:
    retry = RestRetry(3, 0.001, 0.001)
    retry.block_for(0.2)
    other = Script()
    started = time.monotonic()
    assert await retry.call("/y", other) == "ok"  # a request that never saw the 429
    assert other.at[0] - started >= 0.19
    assert retry.blocked_s == 0.0


async def test_a_shorter_pause_never_shortens_a_longer_one() -> None:
    retry = RestRetry(3, 0.001, 0.001)
    retry.block_for(60.0)
    retry.block_for(1.0)
    assert 59.0 < retry.blocked_s <= 60.0


async def test_concurrent_calls_all_wait_out_one_pause() -> None:
    retry = RestRetry(3, 0.001, 0.001)
    retry.block_for(0.15)
    scripts = [Script() for _ in range(3)]
    started = time.monotonic()
    await asyncio.gather(*(retry.call("/z", s) for s in scripts))
    assert all(s.at[0] - started >= 0.14 for s in scripts)


def test_fewer_than_one_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts must be >= 1, got 0"):
        RestRetry(0, 0.1, 1.0)
