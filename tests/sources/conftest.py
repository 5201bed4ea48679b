"""Fixtures for source tests: a fake Binance and a recording sink."""

from collections.abc import AsyncIterator

import pytest

from tests.sources.fake_binance import FakeBinance, Sink


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    server = await FakeBinance().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def sink() -> Sink:
    return Sink()
