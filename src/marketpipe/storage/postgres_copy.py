"""Moving Arrow tables in and out of PostgreSQL quickly and exactly.

In: rows are COPYed as CSV (written by Arrow's C++ writer: shortest round-trip floats, quoted
strings, empty unquoted nulls) into a session-temporary staging table, then merged into the
real table with one INSERT … SELECT … ON CONFLICT. Timestamps travel as integer microseconds
and become timestamptz as `mp_ts()` computes them, so nothing is rounded on the way.

Out: SELECT lists turn timestamptz back into integer microseconds with `mp_us()`.
"""

import io
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import Cursor
from psycopg.rows import TupleRow

from marketpipe.model.schemas import with_int_timestamps
from marketpipe.storage.sql_dialect import POSTGRES

_PG_TYPES = {
    pa.string(): "text",
    pa.int64(): "bigint",
    pa.float64(): "double precision",
    pa.bool_(): "boolean",
}


def staging_ddl(name: str, schema: pa.Schema) -> str:
    """A temporary table for `schema` (timestamps as bigint µs), emptied at each commit."""
    columns = ", ".join(
        f"{f.name} {'bigint' if pa.types.is_timestamp(f.type) else _PG_TYPES[f.type]}"
        for f in schema
    )
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS"


def insert_select(
    schema: pa.Schema, staging: str, key: Iterable[str], extra: Iterable[str] = ()
) -> str:
    """`SELECT` of the staging table's columns with timestamps converted back, in key order:
    every writer then locks rows in the same order, so concurrent writers of overlapping rows
    (the archiver and a processor both inserting a trade) wait for each other, never deadlock.
    """
    # mp_ts() spelled out: measured ~20% faster per inserted row than calling the function.
    columns = [
        f"timestamptz 'epoch' + {f.name} * interval '1 microsecond'"
        if pa.types.is_timestamp(f.type) else f.name
        for f in schema
    ]  # fmt: skip
    return f"SELECT {', '.join([*columns, *extra])} FROM {staging} ORDER BY {', '.join(key)}"


def copy_in(cur: Cursor[TupleRow], staging: str, table: pa.Table) -> None:
    """COPY `table` into the staging table (same column order)."""
    rows = table.cast(with_int_timestamps(table.schema))
    buffer = io.BytesIO()
    pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
    with cur.copy(f"COPY {staging} FROM STDIN (FORMAT csv)") as copy:
        copy.write(buffer.getbuffer())


def select_list(schema: pa.Schema, alias: str = "") -> str:
    """Columns of `schema` with timestamps as integer microseconds (the records' form)."""
    return POSTGRES.select_list(schema, alias)
