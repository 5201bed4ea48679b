"""The commit log's durability modes: when each one calls fdatasync (counted), and that the
deprecated `fsync` switch still picks one. What each survives of kill -9 is tested in
test_commit_log.py (the kill -9 test runs in every mode)."""

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from marketpipe.model.errors import StorageError
from marketpipe.storage.commit_log import CommitLog
from marketpipe.storage.embedded import EmbeddedStore
from tests.storage.test_commit_log import batch

LONG_MS = 3_600_000  # a timer that never fires during a test: its step is called directly


class FsyncCounter:
    """Counts os.fdatasync calls (the log's only way to the disk), then makes them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.error: OSError | None = None
        real: Callable[[int], None] = os.fdatasync

        def counting(fd: int) -> None:
            self.calls += 1
            if self.error is not None:
                raise self.error
            real(fd)

        monkeypatch.setattr(os, "fdatasync", counting)
        monkeypatch.setattr(os, "fsync", self._forbidden)

    @staticmethod
    def _forbidden(fd: int) -> None:
        raise AssertionError("the commit log syncs with fdatasync, not fsync")


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> FsyncCounter:
    return FsyncCounter(monkeypatch)


def test_group_syncs_once_inside_every_commit_and_not_at_close(
    tmp_path: Path, fsyncs: FsyncCounter
) -> None:
    log = CommitLog(tmp_path / "commit.log", durability="group")
    for seq in range(1, 6):
        log.append(seq, batch(seq * 10))
        assert fsyncs.calls == seq  # before the append returned
    assert log.sync() is False  # nothing left unsynced
    log.close()
    assert fsyncs.calls == 5


def test_timer_never_syncs_inside_a_commit_and_once_per_interval_while_dirty(
    tmp_path: Path, fsyncs: FsyncCounter
) -> None:
    log = CommitLog(tmp_path / "commit.log", durability="timer", fsync_interval_ms=LONG_MS)
    for seq in range(1, 4):
        log.append(seq, batch(seq * 10))
    assert fsyncs.calls == 0
    assert log.sync() is True  # one interval's step: three commits, one fdatasync
    assert fsyncs.calls == 1
    assert log.sync() is False and log.sync() is False  # idle intervals: none
    assert fsyncs.calls == 1
    log.append(4, batch(40))
    assert log.sync() is True
    assert fsyncs.calls == 2
    log.close()  # nothing unsynced at close: no extra call
    assert fsyncs.calls == 2


def test_timer_syncs_once_at_close_what_the_timer_has_not(
    tmp_path: Path, fsyncs: FsyncCounter
) -> None:
    log = CommitLog(tmp_path / "commit.log", durability="timer", fsync_interval_ms=LONG_MS)
    log.append(1, batch(1))
    log.append(2, batch(4))
    assert fsyncs.calls == 0
    log.close()
    assert fsyncs.calls == 1
    assert [seq for seq, _ in CommitLog(tmp_path / "commit.log").entries()] == [1, 2]


def test_the_timer_thread_syncs_an_unsynced_append_within_its_interval(
    tmp_path: Path, fsyncs: FsyncCounter
) -> None:
    log = CommitLog(tmp_path / "commit.log", durability="timer", fsync_interval_ms=10)
    log.append(1, batch(1))
    deadline = time.monotonic() + 5
    while fsyncs.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert fsyncs.calls == 1
    assert log.sync() is False  # the thread's sync cleared it
    log.close()
    assert fsyncs.calls == 1


def test_a_failed_timer_sync_fails_the_next_commit(tmp_path: Path, fsyncs: FsyncCounter) -> None:
    log = CommitLog(tmp_path / "commit.log", durability="timer", fsync_interval_ms=10)
    fsyncs.error = OSError(5, "Input/output error")
    log.append(1, batch(1))
    deadline = time.monotonic() + 5
    while log.sync_error is None and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(StorageError, match=r"commit log append .* Input/output error"):
        log.append(2, batch(4))
    fsyncs.error = None
    log.close()


def test_never_does_not_sync_at_all(tmp_path: Path, fsyncs: FsyncCounter) -> None:
    log = CommitLog(tmp_path / "commit.log", durability="never")
    for seq in range(1, 6):
        log.append(seq, batch(seq * 10))
    log.close()
    assert fsyncs.calls == 0
    assert len(list(CommitLog(tmp_path / "commit.log").entries())) == 5


@pytest.mark.parametrize(
    ("options", "in_commits", "at_close"),
    [
        ({"durability": "group"}, 3, 0),
        ({"durability": "timer", "fsync_interval_ms": LONG_MS}, 0, 1),
        ({"durability": "never"}, 0, 0),
        ({}, 3, 0),  # the default is "group"
        ({"fsync": True}, 3, 0),  # deprecated: "group"
        ({"fsync": False}, 0, 0),  # deprecated: "never"
    ],
)
def test_the_store_syncs_its_commits_as_its_durability_says(
    tmp_path: Path,
    fsyncs: FsyncCounter,
    options: dict[str, Any],
    in_commits: int,
    at_close: int,
) -> None:
    store = EmbeddedStore(tmp_path, commit_log=True, **options)
    for first in (1, 4, 7):
        store.commit(batch(first))
    assert fsyncs.calls == in_commits
    store.close()
    assert fsyncs.calls == in_commits + at_close


@pytest.mark.parametrize(
    ("durability", "interval", "error"),
    [("always", 100, "durability must be one of"), ("timer", 0, "fsync_interval_ms must be")],
)
def test_a_bad_durability_or_interval_is_refused(
    tmp_path: Path, durability: str, interval: int, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        CommitLog(
            tmp_path / "commit.log",
            durability=durability,  # type: ignore[arg-type]
            fsync_interval_ms=interval,
        )
