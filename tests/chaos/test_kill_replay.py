"""kill -9 during a long replay, restart, repeat: the end state equals an uninterrupted run.

`marketpipe replay` runs as a child process and is SIGKILLed at random (seeded) moments; each
restart replays the same file into the same data dir and continues from what was committed.
"""

import random
import time
from pathlib import Path

import pytest

from tests.chaos.conftest import cli, finish, kill9_after
from tests.chaos.snapshot import assert_consistent, assert_same_results, snapshot

pytestmark = pytest.mark.integration


def uninterrupted(recording: Path, tmp_path: Path) -> tuple[Path, float]:
    data = tmp_path / "reference"
    started = time.monotonic()
    code, err = finish(cli("replay", str(recording), "--data-dir", str(data), cwd=tmp_path))
    assert code == 0, err
    return data, time.monotonic() - started


def kill_and_resume(recording: Path, tmp_path: Path, kills: int, seed: int) -> None:
    reference, duration = uninterrupted(recording, tmp_path)
    data = tmp_path / "killed"
    rng = random.Random(seed)
    landed = attempts = 0
    while landed < kills:
        attempts += 1
        assert attempts <= kills * 4, f"only {landed} of {kills} kills landed mid-run"
        proc = cli("replay", str(recording), "--data-dir", str(data), cwd=tmp_path)
        # Anywhere from start-up to the end of an uninterrupted run's duration.
        landed += kill9_after(proc, rng.uniform(0.3, duration))
    code, err = finish(cli("replay", str(recording), "--data-dir", str(data), cwd=tmp_path))
    assert code == 0, err

    got, want = snapshot(data), snapshot(reference)
    assert_consistent(want)
    assert_consistent(got)
    assert_same_results(got, want)
    assert got.alerts, "the recording fires alerts, so alert dedup is exercised"


def test_replay_killed_3_times_ends_equal_to_an_uninterrupted_run(
    recording: Path, tmp_path: Path
) -> None:
    kill_and_resume(recording, tmp_path, kills=3, seed=1)


@pytest.mark.chaos
def test_replay_killed_20_times_ends_equal_to_an_uninterrupted_run(
    recording: Path, tmp_path: Path
) -> None:
    kill_and_resume(recording, tmp_path, kills=20, seed=2)
