"""PostgreSQL fixtures: one real server per session, a fresh database per test, and a private
server for tests that stop and restart it.

- `postgres_server`: the session's ScriptServer. A test may stop() it if it start()s it again
  (same port and data); `private_postgres` is the safer choice for outages.
- `postgres_dsn`: a DSN to a new, empty database of the session server, dropped afterwards.
- `private_postgres`: a server of the test's own (ScriptServer: .stop(), .start(), .url),
  e.g. to stop PostgreSQL for 30 s mid-stream.
"""

import itertools
from collections.abc import Iterator

import psycopg
import pytest

from tests.servers.scripts import ScriptServer, server_dir

# Tests do not need durability across a machine crash; a clean stop is still clean.
FAST = {"MARKETPIPE_PG_OPTS": "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"}
_databases = itertools.count()


def _new_server() -> ScriptServer:
    server = ScriptServer("postgres", server_dir("pg"), env=FAST)
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ScriptServer]:
    server = _new_server()
    yield server
    server.destroy()


@pytest.fixture
def postgres_dsn(postgres_server: ScriptServer) -> Iterator[str]:
    name = f"test_{next(_databases)}"
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    base = postgres_server.url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(postgres_server.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def private_postgres() -> Iterator[ScriptServer]:
    server = _new_server()
    yield server
    server.destroy()
