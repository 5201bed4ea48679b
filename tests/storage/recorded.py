"""Storage fixtures: the committed batches of a real replay, to feed any store."""

import pytest

from marketpipe.config import load_settings
from marketpipe.embedded.replay import replay
from marketpipe.model.batch import CommitBatch
from tests.conftest import BINANCE_08, BINANCE_09


@pytest.fixture(scope="session")
def recorded_batches(tmp_path_factory: pytest.TempPathFactory) -> list[CommitBatch]:
    """Every batch the embedded pipeline commits while replaying both recorded BTCUSDT files,
    in small batches, so candles are provisional first and revised until final."""
    root = tmp_path_factory.mktemp("replay")
    settings = load_settings(data_dir=root / "data", engine={"batch_max_trades": 500})
    batches: list[CommitBatch] = []
    replay(settings, [BINANCE_08, BINANCE_09], on_commit=lambda b, _: batches.append(b))
    return batches
