"""The disk fills up, or the data dir turns read-only: a clear error, never a traceback, and
no corrupt state — once there is room again, the same replay ends equal to a clean run.

The data dir lives on a small tmpfs this test mounts (CI runs as root), resized or remounted
read-only to make the fault real: ENOSPC and EROFS come from the kernel, not from a mock.
"""

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.conftest import cli, finish
from tests.chaos.live import Exchange, run_live, start_exchange, wait_settled
from tests.chaos.snapshot import assert_consistent, assert_same_results, snapshot
from tests.chaos.truth import assert_matches_truth

pytestmark = pytest.mark.integration


@dataclass
class Disk:
    path: Path

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self.path)], check=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    path = tmp_path / "disk"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.fail(f"disk-fault tests mount a tmpfs and need root: {mounted.stderr.strip()}")
    yield Disk(path)
    subprocess.run(["umount", "-l", str(path)], check=False)


def replay(recording: Path, data: Path, cwd: Path) -> tuple[int, str]:
    return finish(cli("replay", str(recording), "--data-dir", str(data), cwd=cwd))


def assert_clear_error(code: int, err: str, *needles: str) -> None:
    """Exit 1 with an `error:` line naming the cause (one of `needles`); no uncaught
    traceback. (JSON log
    records may carry a logged exception's stack in their `exception` field: that is a log.)"""
    assert code == 1, err
    plain = "\n".join(line for line in err.splitlines() if not line.startswith("{"))
    assert "Traceback" not in plain, plain
    assert "error:" in plain
    flat = " ".join(plain.split())
    assert any(needle in flat for needle in needles), flat[-600:]


@pytest.fixture(scope="module")
def reference(recording: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("reference")
    code, err = replay(recording, cwd / "data", cwd)
    assert code == 0, err
    return cwd / "data"


# The data dir of the full replay takes ~6 MB: 600 KB fills up in the first DuckDB commits,
# 1 MB while writing the Parquet lake, 3 MB mid-way through the warm store.
@pytest.mark.parametrize(
    "size", [pytest.param("600k", marks=pytest.mark.chaos), "1m",
             pytest.param("3m", marks=pytest.mark.chaos)],
)  # fmt: skip
def test_disk_full_is_a_clear_error_and_a_rerun_with_room_ends_equal_to_a_clean_run(
    size: str, disk: Disk, recording: Path, reference: Path, tmp_path: Path
) -> None:
    disk.remount(f"size={size}")
    data = disk.path / "data"
    code, err = replay(recording, data, tmp_path)
    assert_clear_error(code, err, "No space left on device")

    disk.remount("size=64m")
    code, err = replay(recording, data, tmp_path)
    assert code == 0, err
    got = snapshot(data)
    assert_consistent(got)
    assert_same_results(got, snapshot(reference))


def test_read_only_data_dir_is_a_clear_error_and_nothing_is_lost(
    disk: Disk, recording: Path, reference: Path, tmp_path: Path
) -> None:
    disk.remount("size=64m")
    data = disk.path / "data"
    half = tmp_path / "half.recv"
    lines = recording.read_bytes().splitlines(keepends=True)
    half.write_bytes(b"".join(lines[: len(lines) // 2]))
    code, err = replay(half, data, tmp_path)
    assert code == 0, err
    before = snapshot(data)

    disk.remount("ro")
    code, err = replay(recording, data, tmp_path)
    assert_clear_error(code, err, "Read-only file system")
    code, err = replay(recording, disk.path / "new", tmp_path)  # not even creatable
    assert_clear_error(code, err, "Read-only file system")
    assert snapshot(data, recover=False) == before

    disk.remount("rw")
    code, err = replay(recording, data, tmp_path)
    assert code == 0, err
    got = snapshot(data)
    assert_consistent(got)
    assert_same_results(got, snapshot(reference))


@pytest.fixture
def calm_exchange() -> Iterator[Exchange]:
    yield from start_exchange("none")


@pytest.mark.chaos
def test_live_run_on_a_full_disk_stops_with_a_clear_error_and_recovers_complete(
    disk: Disk, calm_exchange: Exchange, tmp_path: Path
) -> None:
    disk.remount("size=1m")  # a few seconds of live data
    data = disk.path / "data"
    code, err = finish(run_live(calm_exchange, data, tmp_path), timeout=120)
    # The commit log's append fills the disk with part of a frame: a torn tail to recover.
    assert_clear_error(code, err, "No space left on device", "short write")

    disk.remount("size=64m")
    again = run_live(calm_exchange, data, tmp_path)
    wait_settled(data)
    os.kill(again.pid, signal.SIGINT)
    code, err = finish(again, timeout=60)
    assert code in (0, 130, -signal.SIGINT), err
    snap = snapshot(data)
    assert_consistent(snap)
    assert_matches_truth(snap, data, calm_exchange.truth(tmp_path / "truth.pickle"))
