"""Where the floor is: the fixed costs under marketpipe's two performance targets.

    .venv/bin/python scripts/perf/floors.py [RECORDING] [--out docs/profiles/floors.json]

RECORDING is a `<recv_ns> <json>` file of Binance trade frames (bench/recording.py writes
one; without it, 200k trades are generated). Everything is timed in CPU seconds of the
calling thread (or the process, for multi-threaded libraries) as well as wall time, and
repeated, keeping the minimum: other work on a shared machine inflates wall time, not the
work itself. Each line says what one unit costs, so the sum shows what a target allows.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from marketpipe.config import AlertSettings, load_settings
from marketpipe.embedded.pipeline import Pipeline
from marketpipe.model.schemas import TRADE_SCHEMA
from marketpipe.processing.alerts import AlertRules
from marketpipe.processing.engine import CandleEngine
from marketpipe.sources.replay import _TRADE_FRAME, ReplayReader
from marketpipe.sources.replay_files import numbered_lines
from marketpipe.storage.duckdb_schema import TABLES
from marketpipe.storage.embedded import EmbeddedStore


def _best(
    fn: Callable[[], object], repeat: int = 3, clock: Callable[[], float] = time.process_time
) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = clock()
        fn()
        best = min(best, clock() - started)
    return best


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def parse_floor(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        block = handle.read(32 * 1024 * 1024)
    block = block[: block.rfind(b"\n") + 1]
    lines = numbered_lines(block)["line"]
    n = len(lines)
    split = _best(lambda: numbered_lines(block))
    regex = _best(lambda: lines.str.extract_groups(_TRADE_FRAME))
    validate = _best(lambda: lines.str.contains(_TRADE_FRAME))
    return {
        "lines": n,
        "split_us_per_line": round(split / n * 1e6, 3),
        "regex_extract_us_per_line": round(regex / n * 1e6, 3),
        "regex_match_only_us_per_line": round(validate / n * 1e6, 3),
    }


def duckdb_floor(trades: pa.Table) -> dict[str, Any]:
    columns = ", ".join(TRADE_SCHEMA.names)
    out: dict[str, Any] = {}
    for threads in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            con = duckdb.connect(f"{tmp}/w.duckdb")
            con.execute(f"SET threads = {threads}")
            con.execute(TABLES["trades_recent"])
            con.register("one", trades.slice(0, 1))
            stmt: list[float] = []
            for _ in range(200):
                started = time.thread_time()
                con.execute("BEGIN").fetchall()
                con.execute(f"INSERT INTO trades_recent SELECT {columns}, 1 FROM one").fetchall()
                con.execute("COMMIT").fetchall()
                stmt.append((time.thread_time() - started) / 3)
            rows = trades.slice(0, 100_000)
            con.register("bulk", rows)
            bulk = _best(
                lambda con=con: con.execute(
                    f"INSERT INTO trades_recent SELECT {columns}, 2 FROM bulk"
                ).fetchall()
            )
            out[f"threads_{threads}"] = {
                "statement_cpu_ms_median": round(statistics.median(stmt) * 1000, 3),
                "arrow_insert_us_per_trade": round(bulk / rows.num_rows * 1e6, 3),
            }
            con.close()
    return out


def parquet_floor(trades: pa.Table) -> dict[str, Any]:
    rows = trades.slice(0, 200_000)
    strings = [f.name for f in TRADE_SCHEMA if pa.types.is_string(f.type)]
    with tempfile.TemporaryDirectory() as tmp:
        every = _best(lambda: pq.write_table(rows, f"{tmp}/a.parquet", compression="zstd"))
        some = _best(
            lambda: pq.write_table(
                rows, f"{tmp}/b.parquet", compression="zstd", use_dictionary=strings
            )
        )
    return {
        "zstd_dictionary_everywhere_us_per_trade": round(every / rows.num_rows * 1e6, 3),
        "zstd_dictionary_strings_only_us_per_trade": round(some / rows.num_rows * 1e6, 3),
    }


def fsync_floor() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as tmp:
        fd = os.open(f"{tmp}/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        samples = []
        for _ in range(200):
            started = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
        os.close(fd)
    return {"append_4k_fdatasync": _percentiles(samples)}


def engine_floor(trades: pa.Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in (10, 50, 500, 2000):
        row: dict[str, float] = {}
        for name, limit in (("rows", 10**9), ("polars", 0)):
            engine = CandleEngine(
                AlertRules(AlertSettings()), grace_us=2_000_000,
                allowed_lateness_us=3_600_000_000, row_path_max=limit,
            )  # fmt: skip
            samples = []
            for k in range(40):
                part = trades.slice(k * size, size)
                started = time.thread_time()
                engine.process(part)
                samples.append(time.thread_time() - started)
            row[f"{name}_path_cpu_ms"] = round(statistics.median(samples[5:]) * 1000, 3)
        out[f"batch_{size}"] = row
    return out


def ingest_latency(trades: pa.Table) -> dict[str, Any]:
    """Pipeline.ingest (engine + commit) for live-sized batches of 50 trades."""
    out: dict[str, Any] = {}
    modes = {"duckdb_txn": {}, "log": {"commit_log": True, "durability": "never"},
             "log_timer": {"commit_log": True, "durability": "timer"},
             "log_fsync": {"commit_log": True, "durability": "group"}}  # fmt: skip
    for name, options in modes.items():
        with tempfile.TemporaryDirectory(dir=os.getcwd()) as tmp:
            store = EmbeddedStore(Path(tmp), warm_threads=1, **options)  # type: ignore[arg-type]
            pipeline = Pipeline(load_settings(data_dir=Path(tmp)), store)
            wall, cpu = [], []
            for k in range(400):
                part = trades.slice(k * 50, 50)
                w, c = time.perf_counter(), time.thread_time()
                pipeline.ingest(part)
                wall.append(time.perf_counter() - w)
                cpu.append(time.thread_time() - c)
            store.close()
        out[name] = {"wall": _percentiles(wall[20:]), "thread_cpu": _percentiles(cpu[20:])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("recording", nargs="?", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    tmp = None
    path = args.recording
    if path is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from bench.recording import write_recording

        tmp = tempfile.TemporaryDirectory()
        path = write_recording(Path(tmp.name) / "trades.recv", 200_000).path
    chunks = []
    for chunk in ReplayReader([path]):
        chunks.append(chunk.trades)
        if sum(c.num_rows for c in chunks) >= 200_000:
            break
    trades = pa.concat_tables(chunks).combine_chunks()
    results = {
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "parse": parse_floor(path),
        "duckdb": duckdb_floor(trades),
        "parquet": parquet_floor(trades),
        "fsync": fsync_floor(),
        "engine": engine_floor(trades),
        "ingest_50_trades": ingest_latency(trades),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
