"""The lake: raw trades, archived candles and market snapshots as Parquet, on any
`pyarrow.fs` filesystem — a local directory (embedded mode) or an S3 or GCS bucket (cluster
mode), same layout:

`{root}/trades/exchange=binance/symbol=BTC-USDT/date=2024-08-09/part-{first_id}-{last_id}.parquet`
`{root}/candles/interval=1m/exchange=binance/symbol=BTC-USDT/date=2024-08-09/part-{first}-{last}.parquet`
`{root}/market/source=coingecko/asset=BTC/date=2024-08-09/part-{first}-{last}.parquet`

(trade parts are named by their first and last trade id, candle parts by their first and last
open time in µs, market snapshot parts by their first and last ts_source in µs). Names are
deterministic, so writing the same rows again replaces a file with identical content. A reader
never sees half a file: locally a file is written to a temporary name and renamed; on S3 and
GCS an object becomes visible only once its upload completes, so parts are written to their
final key directly (a copy-and-delete "rename" would double the I/O for no gain). Readers drop
duplicate keys, which makes compaction crash-safe (lake_compaction.py).
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from marketpipe.model.errors import StorageError
from marketpipe.model.schemas import CANDLE_SCHEMA, MARKET_SNAPSHOT_SCHEMA, TRADE_SCHEMA

TMP_PREFIX = ".tmp-"
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class LakeDataset:
    """One kind of record in the lake and how it is laid out and deduplicated."""

    name: str
    schema: pa.Schema
    partitions: tuple[str, ...]  # directory levels before date=
    time_column: str  # decides the date partition
    name_column: str  # part files are named by its first and last value
    key: tuple[str, ...]  # one row per key
    # Among rows of one key, the first in this order wins (candles: the latest revision).
    prefer: tuple[tuple[str, bool], ...] = ()  # (column, descending)


TRADES = LakeDataset(
    "trades", TRADE_SCHEMA, ("exchange", "symbol"), "ts_event", "trade_id",
    ("exchange", "symbol", "trade_id"),
)  # fmt: skip
CANDLES = LakeDataset(
    "candles", CANDLE_SCHEMA, ("interval", "exchange", "symbol"), "open_time", "open_time",
    ("exchange", "symbol", "interval", "open_time"), (("revision", True), ("is_final", True)),
)  # fmt: skip

# Every vs_currency of an asset shares its files; a day is written whole (lifecycle).
MARKET = LakeDataset(
    "market", MARKET_SNAPSHOT_SCHEMA, ("source", "asset"), "ts_source", "ts_source",
    ("source", "asset", "vs_currency", "ts_source"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PartFile:
    path: str
    directory: str
    day: date
    size: int
    mtime_s: float


class ParquetLake:
    def __init__(self, root: str | Path, filesystem: pafs.FileSystem | None = None) -> None:
        self.filesystem = filesystem or pafs.LocalFileSystem()
        self.root = str(root).rstrip("/")
        # Object stores publish an object atomically when its upload completes.
        self.rename_to_publish = self.filesystem.type_name not in ("s3", "gcs")

    def __repr__(self) -> str:
        return f"ParquetLake({self.filesystem.type_name}:{self.root})"

    def dataset_dir(self, dataset: LakeDataset) -> str:
        return f"{self.root}/{dataset.name}"

    def trades_dir(self) -> str:
        return self.dataset_dir(TRADES)

    # ---- writes --------------------------------------------------------------------------

    def write_trades(self, trades: pa.Table) -> int:
        """Write trades, one file per (exchange, symbol, date); returns the number of files."""
        return self.write(TRADES, trades)

    def write_candles(self, candles: pa.Table) -> int:
        """Write candles, one file per (interval, exchange, symbol, date)."""
        return self.write(CANDLES, candles)

    def write_market(self, snapshots: pa.Table) -> int:
        """Write market snapshots, one file per (source, asset, date)."""
        return self.write(MARKET, snapshots)

    def write(self, dataset: LakeDataset, rows: pa.Table) -> int:
        if not rows.num_rows:
            return 0
        frame = pl.from_arrow(rows.select(dataset.schema.names).cast(dataset.schema))
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns(date=pl.col(dataset.time_column).dt.date().cast(pl.Utf8))
        written = 0
        for values, part in frame.partition_by(
            *dataset.partitions, "date", as_dict=True, maintain_order=True
        ).items():
            directory = self.partition_dir(dataset, values[:-1], str(values[-1]))
            table = part.drop("date").sort(order_of(dataset)).to_arrow().cast(dataset.schema)
            self.write_part(dataset, table, directory)
            written += 1
        return written

    def partition_dir(self, dataset: LakeDataset, values: tuple[object, ...], day: str) -> str:
        levels = "/".join(f"{k}={v}" for k, v in zip(dataset.partitions, values, strict=True))
        return f"{self.dataset_dir(dataset)}/{levels}/date={day}"

    def write_part(self, dataset: LakeDataset, table: pa.Table, directory: str) -> str:
        """Write one part file of rows sorted by the dataset's name column; returns its path."""
        names = table.column(dataset.name_column).cast(pa.int64())
        name = f"part-{names[0].as_py()}-{names[-1].as_py()}.parquet"
        final = f"{directory}/{name}"
        try:
            if not self.rename_to_publish:
                self._write_parquet(table, final)
                return final
            self.filesystem.create_dir(directory, recursive=True)
            temporary = f"{directory}/{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
            self._write_parquet(table, temporary)
            self.filesystem.move(temporary, final)
            return final
        except OSError as exc:
            raise StorageError(f"lake write to {final} failed: {exc}") from exc

    def _write_parquet(self, table: pa.Table, path: str) -> None:
        pq.write_table(
            table, path, filesystem=self.filesystem, compression="zstd",
            # Dictionaries only where values repeat: on ids, prices and times they cost
            # two thirds of the write and compress no better than zstd alone.
            use_dictionary=[f.name for f in table.schema if pa.types.is_string(f.type)],
        )  # fmt: skip

    def delete(self, path: str) -> None:
        try:
            self.filesystem.delete_file(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"lake delete of {path} failed: {exc}") from exc

    # ---- listing -------------------------------------------------------------------------

    def parts(
        self, dataset: LakeDataset, *, prefix: dict[str, str] | None = None,
        include_temporary: bool = False,
    ) -> Iterator[PartFile]:  # fmt: skip
        """Part files of a dataset, optionally only under leading partition values (e.g.
        `{"exchange": "binance", "symbol": "BTC-USDT"}` for trades)."""
        base = self.dataset_dir(dataset)
        for column in dataset.partitions:
            if not prefix or column not in prefix:
                break
            base = f"{base}/{column}={prefix[column]}"
        try:
            selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
            infos = self.filesystem.get_file_info(selector)
        except OSError as exc:
            raise StorageError(f"cannot list lake {base}: {exc}") from exc
        for info in infos:
            if not info.is_file or not info.path.endswith(".parquet"):
                continue
            directory, _, name = info.path.rpartition("/")
            if name.startswith(TMP_PREFIX) and not include_temporary:
                continue
            day = _day_of(directory)
            if day is None:
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
            yield PartFile(info.path, directory, day, info.size or 0, mtime)

    # ---- reads ---------------------------------------------------------------------------

    def read_trades(
        self, *, exchange: str | None = None, symbol: str | None = None,
        start: int | None = None, end: int | None = None,
    ) -> pa.Table:  # fmt: skip
        """Trades in `[start, end)` (µs), sorted by `(ts_event, trade_id)`, each trade once."""
        table = self.read(TRADES, {"exchange": exchange, "symbol": symbol}, start, end)
        return table.sort_by([("ts_event", "ascending"), ("trade_id", "ascending")])

    def read_candles(
        self, *, interval: str, exchange: str | None = None, symbol: str | None = None,
        start: int | None = None, end: int | None = None,
    ) -> pa.Table:  # fmt: skip
        """Archived candles with open time in `[start, end)`, sorted by open time."""
        equal = {"interval": interval, "exchange": exchange, "symbol": symbol}
        table = self.read(CANDLES, equal, start, end)
        return table.sort_by([("open_time", "ascending"), ("exchange", "ascending"),
                              ("symbol", "ascending")])  # fmt: skip

    def read_market(
        self, *, source: str | None = None, asset: str | None = None,
        start: int | None = None, end: int | None = None,
    ) -> pa.Table:  # fmt: skip
        """Market snapshots with ts_source in `[start, end)`, sorted by (ts_source, source,
        asset, vs_currency), each key once."""
        table = self.read(MARKET, {"source": source, "asset": asset}, start, end)
        order = ["ts_source", "source", "asset", "vs_currency"]
        return table.sort_by([(c, "ascending") for c in order])

    def read(
        self, dataset: LakeDataset, equal: dict[str, str | None], start: int | None,
        end: int | None,
    ) -> pa.Table:  # fmt: skip
        wanted = {k: v for k, v in equal.items() if v}
        first_day = None if start is None else _utc_day(start)
        last_day = None if end is None else _utc_day(end - 1)
        files = [
            p.path for p in self.parts(dataset, prefix=wanted)
            if (first_day is None or p.day >= first_day) and (last_day is None or p.day <= last_day)
        ]  # fmt: skip
        if not files:
            return dataset.schema.empty_table()
        condition = pc.scalar(True)
        for column, value in wanted.items():
            condition &= pc.field(column) == value
        ts = pa.timestamp("us", tz="UTC")
        if start is not None:
            condition &= pc.field(dataset.time_column) >= pa.scalar(start, type=ts)
        if end is not None:
            condition &= pc.field(dataset.time_column) < pa.scalar(end, type=ts)
        try:
            table = ds.dataset(
                files, schema=dataset.schema, filesystem=self.filesystem, format="parquet"
            ).to_table(filter=condition)
        except OSError as exc:
            raise StorageError(f"lake read failed: {exc}") from exc
        return deduplicate(dataset, table)


def order_of(dataset: LakeDataset) -> list[str]:
    """Rows of a part file are sorted by its name column, then by the rest of the key not
    fixed by the directory (market: vs_currency), so the same rows give the same file."""
    fixed = {*dataset.partitions, dataset.name_column}
    return [dataset.name_column, *(k for k in dataset.key if k not in fixed)]


def deduplicate(dataset: LakeDataset, table: pa.Table) -> pa.Table:
    """One row per key; among duplicates the dataset's preferred one (a crash between writing
    a compacted file and deleting its inputs leaves both, and they must count once)."""
    if not table.num_rows:
        return table
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if dataset.prefer:
        frame = frame.sort(
            [c for c, _ in dataset.prefer], descending=[d for _, d in dataset.prefer]
        )
    unique = frame.unique(subset=list(dataset.key), keep="first", maintain_order=True)
    if unique.height == frame.height and not dataset.prefer:
        return table
    return unique.to_arrow().cast(dataset.schema)


def _day_of(directory: str) -> date | None:
    _, _, leaf = directory.rpartition("/")
    if not leaf.startswith("date="):
        return None
    try:
        return date.fromisoformat(leaf[5:])
    except ValueError:
        return None


def _utc_day(us: int) -> date:
    return _EPOCH + timedelta(days=us // 86_400_000_000)
