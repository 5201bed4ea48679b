"""Redis fixtures: one real server per session, flushed before each test that asks for it.

- `redis_server`: the session's ScriptServer.
- `redis_url`: its URL (`redis://127.0.0.1:PORT/0`), with every key flushed first.
"""

from collections.abc import Iterator

import pytest
import redis

from tests.servers.scripts import ScriptServer, server_dir


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ScriptServer]:
    server = ScriptServer("redis", server_dir("redis"))
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def redis_url(redis_server: ScriptServer) -> str:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url
