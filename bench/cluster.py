"""Cluster scenario (`make bench`, or alone): Kafka producer rate, native vs Spark
throughput on the same input, and Kafka-in -> candle-in-PostgreSQL latency for both engines.

    python -m bench.cluster [--trades 1000000] [--rate 2000] [--seconds 15]

Starts its own Kafka broker and PostgreSQL (repo scripts), a local Spark session, and:
1. produces `--trades` synthetic trades (6 symbols) as fast as the broker takes them;
2. runs each engine over that backlog into its own database: trades/s until the last offset
   is committed;
3. paces `--rate` trades/s for `--seconds` into fresh topics while each engine runs live, and
   times every trade from its send to the commit of a 1m candle containing it (the candle's
   last_trade_id reached the trade's id), p50/p99.
"""

import argparse
import json
import os
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyspark
from deploy.kafka.broker import KafkaBroker

from harness.servers import ScriptServer, server_dir
from marketpipe.bus.kafka import Topics, end_offsets, ensure_topics
from marketpipe.cluster.ingest import KafkaIngest
from marketpipe.cluster.native import EngineConfig, NativeProcessor
from marketpipe.cluster.spark_engine import SparkSink, run_spark, spark_jars
from marketpipe.config import load_settings
from marketpipe.model.batch import CommitBatch
from marketpipe.simulator import SyntheticMarket
from marketpipe.spark.job import JobConfig, local_session, start
from marketpipe.storage.postgres_warm import PostgresWarehouse

SYMBOLS = ["ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]
REPO = Path(__file__).resolve().parents[1]


class CommitClock:
    """Wraps the warm store: remembers when each commit landed and how far (last 1m candle
    trade id per symbol) it got."""

    def __init__(self, store: PostgresWarehouse) -> None:
        self.store = store
        self.commits: list[tuple[float, dict[str, int]]] = []
        self.last_data_commit = 0.0  # offsets moved (native) or a fenced batch (spark)

    def _note(self, batch: CommitBatch) -> None:
        reach: dict[str, int] = {}
        for c in batch.candles:
            if c.interval == "1m":
                reach[c.symbol] = max(reach.get(c.symbol, -1), c.last_trade_id)
        self.commits.append((time.time(), reach))

    def commit(self, batch: CommitBatch, **kw: Any) -> None:
        self.store.commit(batch, **kw)
        self._note(batch)
        if kw.get("offsets"):
            self.last_data_commit = time.time()

    def claim_partitions(self, *args: Any, **kw: Any) -> Any:
        return self.store.claim_partitions(*args, **kw)

    def commit_fenced(self, batch: CommitBatch, *, fence: tuple[str, int]) -> bool:
        done = self.store.commit_fenced(batch, fence=fence)
        if done:
            self._note(batch)
            self.last_data_commit = time.time()
        return done

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _database(server: ScriptServer, name: str) -> PostgresWarehouse:
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    store = PostgresWarehouse(f"{server.url.rsplit('/', 1)[0]}/{name}")
    store.migrate()
    return store


def _trades(n: int, seed: int = 5) -> pa.Table:
    start = 1_723_248_000_000_000
    return SyntheticMarket(SYMBOLS, 2000.0, seed, start).generate(n).to_arrow()


def _latencies(sent: dict[str, list[tuple[int, float]]], clock: CommitClock) -> list[float]:
    out: list[float] = []
    for symbol, trades in sent.items():
        trades.sort()
        i = 0
        for at, reach in clock.commits:
            top = reach.get(symbol)
            if top is None:
                continue
            while i < len(trades) and trades[i][0] <= top:
                out.append((at - trades[i][1]) * 1000)
                i += 1
    return out


def _pace(
    broker: KafkaBroker, topics: Topics, table: pa.Table, rate: float
) -> dict[str, list[tuple[int, float]]]:
    ingest = KafkaIngest(broker.bootstrap, topics, **{"linger.ms": 1})
    sent: dict[str, list[tuple[int, float]]] = defaultdict(list)
    started = time.time()
    step = max(1, int(rate / 100))  # 100 sends a second
    for offset in range(0, table.num_rows, step):
        due = started + offset / rate
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        part = table.slice(offset, step)
        ingest.trade_table(part)
        ingest.producer.poll()
        now = time.time()
        for symbol, trade_id in zip(
            part.column("symbol").to_pylist(), part.column("trade_id").to_pylist(), strict=True
        ):
            sent[symbol].append((trade_id, now))
    ingest.flush()
    return sent


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "samples": 0}
    arr = np.array(values)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 1),
        "p99_ms": round(float(np.percentile(arr, 99)), 1),
        "samples": len(values),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """`make bench` entry (bench/__main__.py): 1M trades (200k with --quick)."""
    default = 200_000 if quick else 1_000_000
    trades = int(os.environ.get("BENCH_CLUSTER_TRADES", default))
    return {"cluster": measure(trades, 2000.0, 10.0 if quick else 15.0)}


def measure(trades: int, rate: float, seconds: float) -> dict[str, Any]:
    settings = load_settings()
    config = EngineConfig(settings.alerts, idle_after_s=1.0)
    results: dict[str, Any] = {"trades": trades, "paced_rate": rate, "paced_seconds": seconds}
    with tempfile.TemporaryDirectory(prefix="marketpipe-bench-cluster-") as tmp:
        broker = KafkaBroker(Path(tmp) / "kafka")
        broker.start()
        results["kafka_startup_s"] = round(broker.startup_s or 0, 1)
        pg = ScriptServer(
            "postgres",
            server_dir("bench-pg"),
            env={"MARKETPIPE_PG_OPTS": "-c fsync=off -c synchronous_commit=off"},
        )
        pg.start()
        spark_started = time.perf_counter()
        jars = spark_jars(
            REPO / ".cache" / "spark", pyspark.__version__, Path(pyspark.__file__).parent / "jars"
        )
        spark = local_session("local[2]", jars)
        spark.sparkContext.setLogLevel("ERROR")
        results["spark_startup_s"] = round(time.perf_counter() - spark_started, 1)
        try:
            table = _trades(trades)
            backlog = Topics("bench-backlog")
            ensure_topics(broker.bootstrap, backlog, partitions=4)
            ingest = KafkaIngest(broker.bootstrap, backlog)
            t0 = time.perf_counter()
            ingest.trade_table(table)
            ingest.flush()
            produce_s = time.perf_counter() - t0
            results["producer_msgs_per_s"] = round(trades / produce_s)
            print(f"cluster: produced {trades:,} in {produce_s:.1f}s", flush=True)

            # Throughput on the backlog.
            store = CommitClock(_database(pg, "bench_native"))
            processor = NativeProcessor(config, store, broker.bootstrap, backlog, "bench")  # type: ignore[arg-type]
            wall0 = time.time()
            processor.run(until_idle=True, max_seconds=1800)
            native_s = store.last_data_commit - wall0
            results["native_trades_per_s"] = round(trades / native_s)
            print(f"cluster: native {native_s:.1f}s", flush=True)

            store = CommitClock(_database(pg, "bench_spark"))
            sink = SparkSink(config, store, broker.bootstrap, backlog, "bench")  # type: ignore[arg-type]
            job = JobConfig(
                broker.bootstrap,
                backlog.trades,
                backlog.dlq,
                f"{tmp}/ckpt-backlog",
                query_name="bench",
                max_offsets_per_trigger=500_000,
            )
            wall0 = time.time()
            queries = start(spark, job, sink)
            run_spark(
                sink,
                queries,
                until_idle=True,
                max_seconds=1800,
                end_offsets=end_offsets(broker.bootstrap, backlog.trades),
            )
            spark_s = store.last_data_commit - wall0
            results["spark_trades_per_s"] = round(trades / spark_s)
            results["spark_seconds_include_query_start"] = True
            print(f"cluster: spark {spark_s:.1f}s", flush=True)
            results["native_to_spark_throughput"] = round(
                results["native_trades_per_s"] / results["spark_trades_per_s"], 2
            )

            # Latency at a paced rate, each engine live.
            paced = _trades(int(rate * seconds), seed=9)
            for engine in ("native", "spark"):
                topics = Topics(f"bench-live-{engine}")
                ensure_topics(broker.bootstrap, topics, partitions=4)
                store = CommitClock(_database(pg, f"bench_live_{engine}"))
                stop = threading.Event()
                if engine == "native":
                    live = NativeProcessor(config, store, broker.bootstrap, topics, "live")  # type: ignore[arg-type]
                    worker = threading.Thread(target=lambda p=live: p.run(max_seconds=seconds + 60))
                    worker.start()
                    time.sleep(3)  # joined the group
                    sent = _pace(broker, topics, paced, rate)
                    time.sleep(3)
                    live.stop()
                    worker.join()
                else:
                    sink = SparkSink(config, store, broker.bootstrap, topics, "live")  # type: ignore[arg-type]
                    job = JobConfig(
                        broker.bootstrap,
                        topics.trades,
                        topics.dlq,
                        f"{tmp}/ckpt-live",
                        query_name="live",
                        starting_offsets="latest",
                    )
                    queries = start(spark, job, sink)
                    worker = threading.Thread(
                        target=lambda s=sink, q=queries, e=stop: run_spark(s, q, stop=e)
                    )
                    worker.start()
                    time.sleep(15)  # first (empty) micro-batch
                    sent = _pace(broker, topics, paced, rate)
                    time.sleep(8)
                    stop.set()
                    worker.join()
                results[f"{engine}_latency"] = _percentiles(_latencies(sent, store))
                print(f"cluster: {engine} latency {results[f'{engine}_latency']}", flush=True)
        finally:
            spark.stop()
            broker.stop()
            pg.destroy()
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--trades", type=int, default=int(os.environ.get("BENCH_CLUSTER_TRADES", 1_000_000))
    )
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    results = measure(args.trades, args.rate, args.seconds)
    print(json.dumps(results, indent=2))
    out = Path(__file__).parent / "results" / "cluster.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
