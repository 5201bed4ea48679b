"""PostgreSQL schema management: versioned migrations and the day partitions of trades.

Migrations are the SQL files in `postgres_migrations/` (`NNNN_name.sql`), applied in order,
each in its own transaction, and recorded in `schema_migrations`. Concurrent starters (several
consumers, the API) serialize on an advisory lock, so each migration runs exactly once.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

import psycopg
from psycopg.rows import TupleRow

from marketpipe.model.errors import StorageError

Connection = psycopg.Connection[TupleRow]
_MIGRATIONS_PACKAGE = "marketpipe.storage.postgres_migrations"
_LOCK_MIGRATE = 0x6D70_0001  # advisory lock keys ("mp" + purpose)
_LOCK_PARTITIONS = 0x6D70_0002
DAY_US = 86_400_000_000
_PARTITION = re.compile(r"^trades_recent_p(\d{8})$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files(_MIGRATIONS_PACKAGE).iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(conn: Connection) -> list[int]:
    """Apply every migration not yet applied; returns the versions applied now."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_MIGRATE])
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            try:
                with conn.transaction():  # a savepoint: one failing file names itself
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s, now())",
                        [migration.version, migration.name],
                    )
            except psycopg.Error as exc:
                raise StorageError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}"
                ) from exc
            applied_now.append(migration.version)
    return applied_now


def day_of(us: int) -> int:
    """The UTC day (as µs at midnight) holding the instant `us`."""
    return us - us % DAY_US


def partition_name(day_us: int) -> str:
    return f"trades_recent_p{datetime.fromtimestamp(day_us / 1e6, UTC):%Y%m%d}"


def partition_day(name: str) -> int | None:
    match = _PARTITION.match(name)
    if match is None:
        return None
    day = datetime.strptime(match[1], "%Y%m%d").replace(tzinfo=UTC)
    return int(day.timestamp()) * 1_000_000


def existing_partitions(conn: Connection) -> dict[int, str]:
    """Day (µs) -> partition name, for every day partition of trades_recent."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'trades_recent'::regclass"
    ).fetchall()
    days = {}
    for (name,) in rows:
        day = partition_day(str(name))
        if day is not None:
            days[day] = str(name)
    return days


def create_partitions(conn: Connection, days: set[int]) -> None:
    """Create the day partitions that are missing, in their own short transaction (creating a
    partition locks the parent table; holding that through a batch would stall other writers)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_PARTITIONS])
        have = existing_partitions(conn)
        for day in sorted(days - have.keys()):
            start = datetime.fromtimestamp(day / 1e6, UTC)
            end = start + timedelta(days=1)
            conn.execute(
                f"CREATE TABLE {partition_name(day)} PARTITION OF trades_recent "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )


def drop_partitions_before(conn: Connection, cutoff_us: int) -> list[str]:
    """Drop the day partitions that end at or before `cutoff_us`; returns their names."""
    dropped = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_PARTITIONS])
        for day, name in sorted(existing_partitions(conn).items()):
            if day + DAY_US <= cutoff_us:
                conn.execute(f"DROP TABLE {name}")
                dropped.append(name)
    return dropped
