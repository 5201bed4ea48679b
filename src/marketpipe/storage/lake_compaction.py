"""Daily compaction of the lake: each finished day's part files of one partition become one.

Dedup-safe and crash-safe, in this order per partition directory:

1. read every part (duplicates of a key dropped, the preferred row kept, as readers do);
2. write the result as one part with its deterministic name (atomically, see lake.py);
3. delete the inputs, except a file the output just replaced under the same name.

A crash after 2 leaves the new part beside its inputs: readers drop the duplicate keys, and
the next run finds the same inputs plus the output, writes the same output again and finishes
the deletes. Parts written meanwhile by an exporter are not in the input list, so they are
never deleted. Temporary files older than an hour (a crash mid-write) are removed.
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

import pyarrow.dataset as ds

from marketpipe.model.errors import StorageError
from marketpipe.storage.lake import TMP_PREFIX, LakeDataset, ParquetLake, PartFile, deduplicate

log = logging.getLogger(__name__)

STALE_TEMPORARY_S = 3600.0


@dataclass(slots=True)
class CompactionResult:
    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_in: int = 0
    rows_out: int = 0
    temporaries_removed: int = 0
    written: list[str] = field(default_factory=list)


def compact(
    lake: ParquetLake, dataset: LakeDataset, *, before: date, now_s: float | None = None
) -> CompactionResult:
    """Compact every partition of `dataset` dated before `before` that has several parts."""
    result = CompactionResult()
    now_s = time.time() if now_s is None else now_s
    by_directory: dict[str, list[PartFile]] = defaultdict(list)
    for part in lake.parts(dataset, include_temporary=True):
        name = part.path.rpartition("/")[2]
        if name.startswith(TMP_PREFIX):
            if now_s - part.mtime_s > STALE_TEMPORARY_S:
                lake.delete(part.path)
                result.temporaries_removed += 1
            continue
        if part.day < before:
            by_directory[part.directory].append(part)
    for directory, parts in sorted(by_directory.items()):
        if len(parts) < 2:
            continue
        compact_partition(lake, dataset, directory, parts, result)
    return result


def compact_partition(
    lake: ParquetLake,
    dataset: LakeDataset,
    directory: str,
    parts: list[PartFile],
    result: CompactionResult,
) -> str:
    """Rewrite one partition's parts into one; returns the path written."""
    paths = sorted(p.path for p in parts)
    try:
        rows = ds.dataset(
            paths, schema=dataset.schema, filesystem=lake.filesystem, format="parquet"
        ).to_table()
    except OSError as exc:
        raise StorageError(f"compaction of {directory} cannot read its parts: {exc}") from exc
    merged = deduplicate(dataset, rows).sort_by(
        [(dataset.name_column, "ascending"), *[(k, "ascending") for k in dataset.key]]
    )
    output = lake.write_part(dataset, merged.cast(dataset.schema), directory)
    for path in paths:
        if path != output:
            lake.delete(path)
    result.partitions += 1
    result.files_in += len(paths)
    result.files_out += 1
    result.rows_in += rows.num_rows
    result.rows_out += merged.num_rows
    result.written.append(output)
    log.info(
        "lake partition compacted",
        extra={"directory": directory, "files": len(paths), "rows": merged.num_rows},
    )
    return output
