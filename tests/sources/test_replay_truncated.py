"""Broken replay input, as a user meets it: a `.gz` cut short keeps every whole line read
before the break, names the file, line and byte, stores the break as a dead letter and exits 1;
files that cannot be read at all get one clear line and leave the data dir as it was."""

import gzip
import re
import zipfile
import zlib
from pathlib import Path

import duckdb
import pytest

from marketpipe.sources.replay import ReplayReader
from tests.cli.test_cli import assert_same_candles, candles_json, marketpipe
from tests.conftest import BINANCE_08, BINANCE_09

pytestmark = pytest.mark.integration

CUT_BYTES = 100_000


def stored(data_dir: Path) -> dict[str, object]:
    """What a data dir holds: row counts, the stored trade ids and the dead letters."""
    with duckdb.connect(str(data_dir / "warm.duckdb"), read_only=True) as db:
        counts = {
            name: db.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # type: ignore[index]
            for name in ("trades_recent", "candles", "alerts", "dead_letters", "positions")
        }
        ids = [r[0] for r in db.execute("SELECT trade_id FROM trades_recent ORDER BY 1").fetchall()]
        dead = db.execute(
            "SELECT source, error, raw, context FROM dead_letters ORDER BY ts"
        ).fetchall()
    return {"counts": counts, "ids": ids, "dead": dead}


def whole_lines_of(cut: Path) -> bytes:
    """What a decompressor can give of a cut gzip, up to its last newline (zlib, not gzip)."""
    data = zlib.decompressobj(31).decompress(cut.read_bytes())
    return data[: data.rfind(b"\n") + 1]


def trade_ids_of(lines: bytes, tmp_path: Path) -> list[int]:
    plain = tmp_path / "kept.recv"
    plain.write_bytes(lines)
    return sorted(i for c in ReplayReader([plain]) for i in c.trades.column("trade_id").to_pylist())


def test_a_gz_cut_short_keeps_what_was_read_names_line_and_byte_and_exits_1(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    marketpipe("replay", str(BINANCE_08), "--data-dir", str(data_dir))
    before = stored(data_dir)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(BINANCE_09.read_bytes()[:CUT_BYTES])
    kept = whole_lines_of(cut)
    line, byte = kept.count(b"\n") + 1, len(kept)
    assert line > 3_000  # the cut is well into the file: thousands of lines are readable

    result = marketpipe("replay", str(cut), "--data-dir", str(data_dir), check=False)

    message = (
        f"{cut}: broken at line {line:,} (byte {byte:,} of the decompressed data): the "
        f"compressed data ends early (the file is cut short). Kept the {line - 1:,} lines "
        "before it; the break is in dead_letters."
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {message}"
    assert "Traceback" not in result.stderr and "Aborted" not in result.stderr
    assert "│ dead letters                   │ 1 " in result.stderr
    after = stored(data_dir)
    expected_ids = sorted([*before["ids"], *trade_ids_of(kept, tmp_path)])  # type: ignore[misc]
    assert after["ids"] == expected_ids and len(expected_ids) > len(before["ids"])  # type: ignore[arg-type]
    partial = zlib.decompressobj(31).decompress(cut.read_bytes())[byte:]
    assert after["dead"] == [("replay", message, partial, f"{cut}:{line}")]


def test_replaying_the_repaired_file_after_a_cut_equals_one_uninterrupted_replay(
    tmp_path: Path,
) -> None:
    """The windows a cut leaves open stay open (they are not finalized as if the input had
    ended), so the whole file, replayed afterwards, ends exactly as if it had never broken."""
    cut = tmp_path / "cut.gz"
    cut.write_bytes(BINANCE_09.read_bytes()[:CUT_BYTES])
    data_dir, fresh = tmp_path / "data", tmp_path / "fresh"
    assert marketpipe("replay", str(cut), "--data-dir", str(data_dir), check=False).returncode == 1
    marketpipe("replay", str(BINANCE_09), "--data-dir", str(data_dir))
    marketpipe("replay", str(BINANCE_09), "--data-dir", str(fresh))
    assert_same_candles(candles_json(data_dir), candles_json(fresh))
    assert stored(data_dir)["ids"] == stored(fresh)["ids"]


def corrupt_in_the_middle(path: Path, fill: bytes) -> Path:
    data = bytearray(BINANCE_09.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = fill * 64
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("fill", "reason"),
    [
        # 0xff there is no valid deflate block: zlib stops at once
        (b"\xff", "Error -3 while decompressing data: invalid block type"),
        # zeros decode (to garbage, dead-lettered line by line); the CRC at the end fails
        (b"\x00", "CRC check failed 0x3bb60fa4 != 0x7d829282"),
    ],
)
def test_damaged_compressed_data_mid_file_is_a_break_too(
    tmp_path: Path, fill: bytes, reason: str
) -> None:
    bad = corrupt_in_the_middle(tmp_path / "bad.recv.gz", fill)
    try:
        readable = zlib.decompressobj(31).decompress(bad.read_bytes())
    except zlib.error:
        readable = b"".join(_readable_prefix(bad))
    result = marketpipe("replay", str(bad), "--data-dir", str(tmp_path / "data"), check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    found = re.fullmatch(r"error: .*: broken at line ([\d,]+) \(byte ([\d,]+) of .*", last)
    assert found, last
    line, byte = (int(g.replace(",", "")) for g in found.groups())
    # A whole-line prefix of what zlib can decode; the gzip module drops the output of the one
    # step that failed (at most one 128 KiB input read), so it may end a little earlier.
    assert readable[byte - 1 : byte] == b"\n" and readable[:byte].count(b"\n") == line - 1
    assert len(readable) - 1024 * 1024 < byte <= len(readable)
    assert last == (
        f"error: {bad}: broken at line {line:,} (byte {byte:,} of the decompressed "
        f"data): the compressed data is damaged ({reason}). Kept the {line - 1:,} lines "
        "before it; the break is in dead_letters."
    )
    assert stored(tmp_path / "data")["counts"]["trades_recent"] > 5_000  # type: ignore[index]


def _readable_prefix(path: Path) -> list[bytes]:
    """Everything zlib gives before it fails: fed byte by byte, it holds nothing back."""
    o, data, out = zlib.decompressobj(31), path.read_bytes(), []
    for offset in range(len(data)):
        try:
            out.append(o.decompress(data[offset : offset + 1]))
        except zlib.error:
            break
    return out


def _not_gzip(p: Path) -> None:
    p.write_text("hello world\n")


def _gzip_of_nothing(p: Path) -> None:
    with gzip.open(p, "wb"):
        pass


def _zip_of_nothing(p: Path) -> None:
    with zipfile.ZipFile(p, "w"):
        pass


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        (
            "notgz.recv.gz",
            _not_gzip,
            "{path}: cannot be read: not gzip data (Not a gzipped file (b'he'))",
        ),
        (
            "empty.recv",
            lambda p: p.write_bytes(b""),
            "{path}: the file is empty, there is nothing to replay",
        ),
        (
            "empty.recv.gz",
            _gzip_of_nothing,
            "{path}: the file is empty, there is nothing to replay",
        ),
        (
            "BTCUSDT-trades-2024-08-09.zip",
            lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"),
            "{path}: not a readable zip archive (File is not a zip file)",
        ),
        ("BTCUSDT-trades-2024-08-10.zip", _zip_of_nothing, "{path}: the zip archive holds no file"),
        (
            "words.recv",
            lambda p: p.write_text("these are not frames\n"),
            "{path}: unrecognized replay format (expected <recv_ns> <json>, a cryptofeed "
            "recording, JSONL or CSV)",
        ),
    ],
)
def test_unreadable_files_get_one_line_and_leave_stored_data_alone(
    tmp_path: Path, name: str, make: object, message: str
) -> None:
    data_dir = tmp_path / "data"
    marketpipe("replay", str(BINANCE_08), "--data-dir", str(data_dir))
    before = stored(data_dir)
    path = tmp_path / name
    make(path)  # type: ignore[operator]
    # Listed after a good file: the bad one is refused before any work starts.
    result = marketpipe(
        "replay", str(BINANCE_09), str(path), "--data-dir", str(data_dir), check=False
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {message.format(path=path)}"]
    assert stored(data_dir) == before


def test_a_line_that_is_not_a_frame_is_a_dead_letter_named_by_file_and_line(
    tmp_path: Path,
) -> None:
    lines = gzip.decompress(BINANCE_09.read_bytes()).splitlines(keepends=True)
    path = tmp_path / "one-bad-line.recv"
    path.write_bytes(b"".join([*lines[:3], b"\n", b"not a frame\n", *lines[3:]]))
    data_dir = tmp_path / "data"
    result = marketpipe("replay", str(path), "--data-dir", str(data_dir), check=False)
    assert result.returncode == 0  # one bad line does not make the file bad
    assert result.stderr.strip().splitlines()[-1] == (
        f"warning: 1 line(s) were not records and are stored in the dead_letters table of "
        f"{data_dir}; the first: {path}:5: line is not '<recv_ns> <json>' with an int64 recv_ns"
    )
    dead = stored(data_dir)["dead"]
    assert dead == [
        (
            "replay",
            "line is not '<recv_ns> <json>' with an int64 recv_ns",
            b"not a frame",
            f"{path}:5",
        )
    ]
    assert len(stored(data_dir)["ids"]) == sum(  # type: ignore[arg-type]
        c.trades.num_rows for c in ReplayReader([BINANCE_09])
    )
