"""Replay one recording end to end into a fresh data dir; print trades/s and CPU per trade.

    .venv/bin/python scripts/perf/replay_cpu.py RECORDING

CPU seconds (all threads, from rusage) per trade compare runs on a busy machine, where
wall-clock trades/s mostly measures the neighbours.
"""

import resource
import sys
import tempfile
import time
from pathlib import Path

from marketpipe.config import load_settings
from marketpipe.embedded.replay import replay


def main() -> None:
    path = Path(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="marketpipe-perf-") as tmp:
        settings = load_settings(data_dir=Path(tmp) / "data")
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        summary = replay(settings, [path])
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    n = summary.trades_read
    print(
        f"trades={n} stored={summary.trades_stored} lake={summary.lake_trades} "
        f"candles={summary.candles} alerts={summary.alerts} wall={wall:.2f}s "
        f"rate={n / wall:,.0f}/s cpu={cpu:.2f}s ({cpu / n * 1e6:.2f} us/trade) "
        f"peak_rss={after.ru_maxrss / 1024:.0f}MB"
    )


if __name__ == "__main__":
    main()
