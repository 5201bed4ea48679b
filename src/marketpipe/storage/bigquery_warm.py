"""The cluster warm store on BigQuery: batches loaded, not streamed row by row; exactly once
with Kafka offsets; fenced against consumers that lost their partitions.

BigQuery has no multi-table transaction we can rely on (nor does its emulator), so a commit is
a small write-ahead protocol in which exactly one statement decides:

1. stage: each kind of row in the batch is loaded (one Parquet load job each, atomic) into
   the committer's `_stage_<member>_<kind>` (replaced by its next batch: no table churn, and
   the emulator's engine grows with every statement), every row tagged with its batch id and
   the Kafka partition its symbol lives on;
2. commit point: one MERGE into `consumer_offsets` moves the batch's offsets and stamps its
   id on those partition rows, each row only if its stored epoch still equals the epoch the
   committer claimed (fencing). The stamped rows are the partitions that committed;
3. apply: the staged rows of the committed partitions are merged into the tables (trades and
   alerts insert-or-ignore, candles, quotes and positions replace, but never by an older
   value), then a `batches` row marks the batch applied.

A crash after 2 leaves a batch stamped on offset rows but absent from `batches`; the next
claim of one of its partitions (every consumer claims on assignment, before it reads state)
applies it (`recover`). Apply is idempotent, so a committer finishing its own apply late
changes nothing (raw trades excepted: two concurrent applies could both insert a trade, which
needs a committer paused between commit point and apply past a rebalance). A partition another
member claimed since is refused at 2: its rows are never applied, the refusal is counted and
FencedOut raised.
"""

import itertools
import logging
import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from marketpipe.model.batch import CommitBatch
from marketpipe.model.errors import FencedOut
from marketpipe.model.records import Candle, Position
from marketpipe.model.schemas import (
    ALERT_SCHEMA,
    CANDLE_SCHEMA,
    MARKET_SNAPSHOT_SCHEMA,
    QUOTE_SCHEMA,
    TRADE_SCHEMA,
    to_table,
)
from marketpipe.observability import metrics as m
from marketpipe.storage import bigquery_schema as schema
from marketpipe.storage.bigquery_client import BigQueryLocation, Dataset
from marketpipe.storage.bigquery_rows import (
    KINDS,
    Kind,
    candles_table,
    dead_letters_table,
    positions_table,
    staged_columns,
)
from marketpipe.storage.market_keys import first_per_key
from marketpipe.storage.sql_dialect import BIGQUERY
from marketpipe.storage.sql_tier import SqlReads, position_from_row

log = logging.getLogger(__name__)

# symbol -> the Kafka partition of its trades (and quotes): which rows a partition's commit owns
Route = Callable[[str, str], int]
Offsets = Mapping[tuple[str, int], int]
UNROUTED = -1  # rows no partition owns (dead letters without a Kafka context)
# kind -> (staging table, its rows)
Staged = dict[str, tuple[str, pa.Table]]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")
_ROW = "(consumer_group, topic, kafka_partition, next_offset, epoch, batch_id, updated_at)"
_OFFSET_COLUMNS = {"topic": "STRING", "kafka_partition": "INT64", "next_offset": "INT64",
                   "epoch": "INT64"}  # fmt: skip


class BigQueryWarehouse(SqlReads):
    """Warm tier of cluster mode on BigQuery. Candles, trades, alerts, quotes and counts are
    read as `SqlReads` says; `route` maps a symbol to its Kafka partition (needed to fence)."""

    dialect = BIGQUERY
    stores_market_snapshots = True  # the archive role consumes marketpipe.market into it

    def __init__(
        self, location: BigQueryLocation, *, route: Route | None = None,
        writes_trades: bool = True,
    ) -> None:  # fmt: skip
        self.dataset = Dataset(location)
        self.where = location.where
        self.route = route
        # False for the candle processor when the archive role stores the raw trades: a
        # table has one writer (see _insert_new_trades).
        self.writes_trades = writes_trades
        # This committer's staging tables; a member stages its next batch only once the last
        # one is applied, so they hold at most one batch that recovery may still need.
        self.member = uuid.uuid4().hex[:16]
        self._batches = itertools.count()

    def close(self) -> None:
        self.dataset.close()

    def migrate(self) -> None:
        """Create the dataset and apply every migration not yet applied (idempotent)."""
        ds = self.dataset
        ds.ensure()
        ds.query(
            f"CREATE TABLE IF NOT EXISTS `{ds.ref}.schema_migrations` "
            "(version INT64, name STRING, applied_at TIMESTAMP)"
        )
        done = {int(r[0]) for r in ds.query("SELECT version FROM schema_migrations")}
        for migration in schema.migrations(ds.ref):
            if migration.version in done:
                continue
            for statement in migration.statements:
                ds.query(statement)
            ds.query(
                "INSERT INTO schema_migrations VALUES (?, ?, CURRENT_TIMESTAMP())",
                [migration.version, migration.name],
            )
            log.info("warm store migrated", extra={"version": migration.version,
                                                   "at": self.where})  # fmt: skip

    # ---- writes --------------------------------------------------------------------------

    def commit(
        self, batch: CommitBatch, *, consumer_group: str | None = None,
        offsets: Offsets | None = None, fence: Offsets | None = None,
    ) -> None:  # fmt: skip
        """Write the batch and the Kafka offsets `{(topic, partition): next_offset}` of
        `consumer_group` as one outcome. With `fence` `{(topic, partition): epoch}` (from
        `claim_partitions`), a partition whose epoch moved on is refused: its share of the
        batch is not written, and FencedOut is raised after the rest is."""
        if (offsets or fence) and consumer_group is None:
            raise ValueError("offsets and fences need a consumer_group")
        if fence and self.route is None:
            raise ValueError("a fenced commit needs the warehouse's route (symbol -> partition)")
        if fence is not None and not set(offsets or {}) <= set(fence):
            raise ValueError("a fenced commit must fence every partition whose offset it moves")
        if batch.is_empty and not offsets and not fence:
            return
        batch_id = f"{self.member}-{next(self._batches)}"
        staged = self._stage(batch_id, batch)
        if consumer_group is None:  # no Kafka position to move: nothing to decide
            self._apply(batch_id, staged, None)
            return
        committed = self._commit_point(batch_id, consumer_group, offsets or {}, fence)
        refused = set(fence or {}) - committed
        # A symbol's rows belong to partition number p (its trades and quotes topics are
        # keyed alike): they are written only if every fenced (topic, p) committed.
        owned = {p for _, p in committed} - {p for _, p in refused}
        if owned or not refused:  # a batch refused as a whole writes nothing, not even `batches`
            self._apply(batch_id, staged, owned if refused else None)
        if refused:
            m.COMMITS_FENCED.labels("bigquery", consumer_group).inc()
            raise FencedOut(
                f"consumer group {consumer_group!r} no longer owns {sorted(refused)} in "
                f"{self.where}: another member claimed them; their share was not written"
            )

    def claim_partitions(
        self, consumer_group: str, partitions: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """Take ownership of `partitions` for `consumer_group`: each one's epoch goes up by
        one (in one MERGE); returns the new epochs. Batches committed on them but not applied
        (their committer died) are applied before it returns, so the new owner reads the
        state they left."""
        if not partitions:
            return {}
        ds = self.dataset
        stage = f"_claim_{self.member}"
        g = _literal(consumer_group)
        rows = sorted(set(partitions))
        claims = pa.table({
            "topic": [t for t, _ in rows], "kafka_partition": [p for _, p in rows],
            "next_offset": pa.nulls(len(rows), pa.int64()),
            "epoch": pa.nulls(len(rows), pa.int64()),
        })  # fmt: skip
        ds.load(stage, claims, _OFFSET_COLUMNS)
        ds.query(
            f"MERGE consumer_offsets T USING `{stage}` S ON T.consumer_group = {g} "
            "AND T.topic = S.topic AND T.kafka_partition = S.kafka_partition "
            "WHEN MATCHED THEN UPDATE SET epoch = T.epoch + 1, "
            "updated_at = CURRENT_TIMESTAMP() "
            f"WHEN NOT MATCHED THEN INSERT {_ROW} VALUES "
            f"({g}, S.topic, S.kafka_partition, NULL, 1, NULL, CURRENT_TIMESTAMP())",
        )
        wanted = set(rows)
        epochs = {
            (str(t), int(p)): int(e)
            for t, p, e in ds.query(
                "SELECT topic, kafka_partition, epoch FROM consumer_offsets "
                "WHERE consumer_group = ?",
                [consumer_group],
            )
            if (t, p) in wanted
        }
        self.recover(consumer_group, wanted)
        return epochs

    def _stage(self, batch_id: str, batch: CommitBatch) -> Staged:
        """Load each non-empty kind of row into its staging table; returns kind -> table."""
        tables = {
            "trades": batch.trades.select(TRADE_SCHEMA.names)
            if self.writes_trades
            else TRADE_SCHEMA.empty_table(),
            "late": batch.late_trades.select(TRADE_SCHEMA.names),
            "candles": candles_table(batch),
            "alerts": to_table(list({a.alert_id: a for a in batch.alerts}.values()),
                               ALERT_SCHEMA),
            "quotes": to_table(list({(q.exchange, q.symbol): q for q in batch.quotes}.values()),
                               QUOTE_SCHEMA),
            "positions": positions_table(batch.positions),
            "dead": dead_letters_table(batch),
            "market": to_table(first_per_key(batch.snapshots), MARKET_SNAPSHOT_SCHEMA),
        }  # fmt: skip
        staged: Staged = {}
        for kind, table in tables.items():
            if not table.num_rows:
                continue
            name = f"_stage_{self.member}_{kind}"
            rows = table.append_column("_p", self._partitions_of(kind, table)).append_column(
                "_batch", pa.array([batch_id] * table.num_rows, pa.string())
            )
            self.dataset.load(name, rows, staged_columns(kind))
            staged[kind] = (name, rows)
        return staged

    def _partitions_of(self, kind: str, table: pa.Table) -> pa.Array:
        route = self.route
        # Snapshots are keyed by series, not symbol: no partition owns them. Applying a
        # zombie's share anyway is harmless, as a snapshot never changes (insert-or-ignore);
        # its offsets are still refused at the commit point.
        if route is None or kind in ("dead", "market"):
            return pa.array([UNROUTED] * table.num_rows, pa.int64())
        # Routed once per series, then spread over its rows in Arrow: a batch holds many
        # trades of few symbols.
        keys = pc.binary_join_element_wise(table.column("exchange"), table.column("symbol"), ":")
        series = pc.unique(keys)
        parts = pa.array([route(*k.split(":", 1)) for k in series.to_pylist()], pa.int64())
        return pc.take(parts, pc.index_in(keys, value_set=series))

    def _commit_point(
        self, batch_id: str, group: str, offsets: Offsets, fence: Offsets | None
    ) -> set[tuple[str, int]]:
        """The one statement that decides; returns the (topic, partition)s stamped with the
        batch, i.e. the partitions that committed."""
        ds = self.dataset
        keys = sorted(set(offsets) | set(fence or {}))
        if not keys:
            return set()
        stage = f"_stage_{self.member}_offsets"
        ds.load(stage, pa.table({
            "topic": pa.array([t for t, _ in keys], pa.string()),
            "kafka_partition": pa.array([p for _, p in keys], pa.int64()),
            "next_offset": pa.array([offsets.get(k) for k in keys], pa.int64()),
            "epoch": pa.array([(fence or {}).get(k) for k in keys], pa.int64()),
        }), _OFFSET_COLUMNS)  # fmt: skip
        stamp = (
            "UPDATE SET next_offset = COALESCE(S.next_offset, T.next_offset), "
            f"batch_id = {_literal(batch_id)}, updated_at = CURRENT_TIMESTAMP()"
        )
        on = (
            f"ON T.consumer_group = {_literal(group)} AND T.topic = S.topic "
            "AND T.kafka_partition = S.kafka_partition"
        )
        if fence is None:
            sql = (
                f"MERGE consumer_offsets T USING `{stage}` S {on} WHEN MATCHED THEN {stamp} "
                f"WHEN NOT MATCHED THEN INSERT {_ROW} VALUES "
                f"({_literal(group)}, S.topic, S.kafka_partition, S.next_offset, 0, "
                f"{_literal(batch_id)}, CURRENT_TIMESTAMP())"
            )
        else:  # an unclaimed partition has no row to match: refused too
            sql = (
                f"MERGE consumer_offsets T USING `{stage}` S {on} "
                f"WHEN MATCHED AND T.epoch = S.epoch THEN {stamp}"
            )
        ds.query(sql)
        if fence is None:  # nothing can refuse it
            return set(keys)
        return {
            (str(t), int(p))
            for t, p in ds.query(
                "SELECT topic, kafka_partition FROM consumer_offsets "
                "WHERE consumer_group = ? AND batch_id = ?",
                [group, batch_id],
            )
        }

    def _apply(self, batch_id: str, staged: Staged, partitions: set[int] | None) -> None:
        """Merge the staged rows (of `partitions` only, if given) into the tables; idempotent.
        The rows are the batch's own, or read back by `_restage` when recovering."""
        ds = self.dataset
        counts: dict[str, int] = {}
        for kind, (stage, rows) in staged.items():
            columns = staged_columns(kind)
            if partitions is not None:
                kept = pa.array(sorted(partitions | {UNROUTED}), pa.int64())
                rows = rows.filter(pc.is_in(rows.column("_p"), kept))
                ds.load(stage, rows, columns)
            if kind in ("trades", "late"):
                self._insert_new_trades(stage, KINDS[kind], rows)
            else:
                ds.query(KINDS[kind].merge(stage))
            counts[kind] = rows.num_rows
        ds.query(
            "INSERT INTO batches VALUES (?, CURRENT_TIMESTAMP(), ?, ?)",
            [batch_id, counts.get("trades", 0), counts.get("candles", 0)],
        )

    def _insert_new_trades(self, stage: str, kind: Kind, rows: pa.Table) -> None:
        """Insert-or-ignore by trade key, without a join (joins are quadratic on the
        emulator): the stored ids within the staged id and time range of each series are
        read, the staging is rewritten without them, and the rest is appended. Trades have
        one writer per deployment (the archive role): BigQuery has no unique keys, so two
        concurrent writers could both insert a trade."""
        ds = self.dataset
        stored: set[tuple[str, str, int]] = set()
        for exchange, symbol, lo, hi, t0, t1 in ds.query(
            f"SELECT exchange, symbol, MIN(trade_id), MAX(trade_id), UNIX_MICROS(MIN(ts_event)), "
            f"UNIX_MICROS(MAX(ts_event)) FROM `{stage}` GROUP BY exchange, symbol"
        ):
            stored |= {
                (exchange, symbol, int(i))
                for (i,) in ds.query(
                    f"SELECT trade_id FROM `{kind.table}` WHERE exchange = ? AND symbol = ? "
                    "AND trade_id BETWEEN ? AND ? "
                    "AND ts_event BETWEEN TIMESTAMP_MICROS(?) AND TIMESTAMP_MICROS(?)",
                    [exchange, symbol, lo, hi, t0, t1],
                )
            }
        if stored:
            keys = zip(rows.column("exchange").to_pylist(), rows.column("symbol").to_pylist(),
                       rows.column("trade_id").to_pylist(), strict=True)  # fmt: skip
            fresh = rows.filter(pa.array([k not in stored for k in keys], pa.bool_()))
            if not fresh.num_rows:
                return
            ds.load(stage, fresh, {**kind.columns, "_p": "INT64", "_batch": "STRING"})
        names = ", ".join(f"`{c}`" for c in kind.columns)
        ds.query(f"INSERT INTO `{kind.table}` ({names}) SELECT {names} FROM `{stage}`")

    def recover(
        self, consumer_group: str, claimed: Collection[tuple[str, int]] | None = None
    ) -> int:
        """Apply the group's batches that committed but were not applied (a crash between
        commit point and apply); returns how many. With `claimed` (a claim just moved those
        partitions' epochs on, so their last committer can no longer commit), only batches
        stamped on one of them: a batch of a live committer between its commit point and its
        apply is left to it. Without, every such batch (no committer may be running)."""
        ds = self.dataset
        pending = ds.query(
            "SELECT batch_id, topic, kafka_partition FROM consumer_offsets "
            "WHERE consumer_group = ? AND batch_id IS NOT NULL "
            "AND batch_id NOT IN (SELECT batch_id FROM batches)",
            [consumer_group],
        )
        by_batch: dict[str, set[int]] = {}
        for batch_id, _, partition in pending:
            by_batch.setdefault(str(batch_id), set()).add(int(partition))
        if claimed is not None:
            mine = {str(b) for b, t, p in pending if (t, p) in set(claimed)}
            by_batch = {b: parts for b, parts in by_batch.items() if b in mine}
        for batch_id, partitions in by_batch.items():
            self._apply(batch_id, self._restage(batch_id),
                        partitions if self.route is not None else None)  # fmt: skip
        return len(by_batch)

    def _restage(self, batch_id: str) -> Staged:
        """A committed batch's rows, read back from its committer's staging tables and staged
        again in this committer's own (the committer, if alive, may reuse its tables)."""
        ds = self.dataset
        prefix = f"_stage_{batch_id.split('-')[0]}_"
        staged: Staged = {}
        for table in ds.tables(prefix):
            kind = table.removeprefix(prefix)
            if kind not in KINDS:
                continue
            rows = ds.read(f"SELECT * FROM `{table}` WHERE _batch = {_literal(batch_id)}")
            if rows.num_rows:
                own = f"_stage_{self.member}_{kind}"
                ds.load(own, rows, staged_columns(kind))
                staged[kind] = (own, rows)
        log.warning("applying a batch committed before a crash",
                    extra={"batch_id": batch_id, "kinds": sorted(staged)})  # fmt: skip
        return staged

    # ---- offsets and restore ------------------------------------------------------------

    def load_offsets(self, consumer_group: str, topic: str) -> dict[int, int]:
        """{partition: next offset to consume} stored by `consumer_group` for `topic`. A batch
        a crash left committed but unapplied is applied by the next claim of its partitions,
        before the claimer reads any state."""
        rows = self.dataset.query(
            "SELECT kafka_partition, next_offset FROM consumer_offsets "
            "WHERE consumer_group = ? AND topic = ? AND next_offset IS NOT NULL",
            [consumer_group, topic],
        )
        return {int(p): int(o) for p, o in rows}

    def positions(self) -> list[Position]:
        columns = ", ".join(schema.POSITION_COLUMNS)
        rows = self.dataset.query(f"SELECT {columns} FROM positions ORDER BY exchange, symbol")
        return [position_from_row(row) for row in rows]

    def open_windows(self, min_close_time: int) -> list[tuple[Candle, int, int]]:
        """Candles closing after `min_close_time`, with the event times of their first and
        last trades (kept on the candle row: see `_candles_table`)."""
        rows = self.dataset.query(
            f"SELECT {BIGQUERY.select_list(CANDLE_SCHEMA)}, "
            "COALESCE(first_ts_event, UNIX_MICROS(open_time)), "
            "COALESCE(last_ts_event, UNIX_MICROS(close_time) - 1) FROM candles "
            "WHERE close_time > TIMESTAMP_MICROS(?)",
            [min_close_time],
        )
        return [(Candle(*row[:-2]), int(row[-2]), int(row[-1])) for row in rows]

    # ---- reads ---------------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query (positional `?` parameters) in the dataset."""
        return self.dataset.query(sql, params)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.dataset.query(sql, params)


def _literal(name: str) -> str:
    """A consumer group or batch id as a SQL string literal. In MERGE conditions the emulator
    ignores query parameters (a MERGE on `T.consumer_group = ?` matches nothing), so these
    are spelled in the statement, and only safe names are accepted."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"{name!r}: consumer groups may hold only letters, digits and ._:-")
    return f"'{name}'"
