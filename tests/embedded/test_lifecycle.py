"""run_lifecycle as the embedded scheduler calls it: inside a running pipeline, on its open
store (DuckDB has one writer), with `now` in microseconds."""

import pytest

from marketpipe.cli.lifecycle import run_lifecycle
from marketpipe.config import Settings
from marketpipe.embedded.jobs import lifecycle_job
from marketpipe.embedded.replay import replay
from marketpipe.embedded.stores import open_store
from marketpipe.storage.lake import CANDLES
from tests.conftest import BINANCE_08, BINANCE_09

pytestmark = pytest.mark.integration


async def test_the_scheduled_job_runs_on_the_pipelines_open_store(settings: Settings) -> None:
    replay(settings, [BINANCE_08, BINANCE_09])
    store = open_store(settings, live=True)  # what `marketpipe run` holds open
    try:
        await lifecycle_job(settings, store).run()  # the wall clock: 2024's days are final
        archived = {p.day.isoformat() for p in store.lake.parts(CANDLES)}
        assert archived == {"2024-08-08", "2024-08-09"}
        assert store.warm.counts()["trades_recent"] == 0  # exported, and past 90 days
    finally:
        store.close()


def test_now_in_seconds_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="microseconds"):
        run_lifecycle(settings, now=1_723_291_200)
