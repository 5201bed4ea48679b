"""The problems the health strip shows: each names its component and says why, open gaps
included; healthy components and filled gaps give none."""

from marketpipe.model.errors import StorageError
from marketpipe.model.records import Position
from marketpipe.serving.pipeline_stats import problems, with_problems


def _position(symbol: str, ranges: list[tuple[int, int]]) -> Position:
    return Position("binance", symbol, ranges[-1][1], 0, ranges, 0, 0, 0, 0)


HEALTH = {
    "status": "degraded",
    "components": {
        "storage": {"status": "ok"},
        "binance": {"status": "degraded", "connections_open": 0, "last_error": "refused"},
        "scheduler": {
            "status": "failing",
            "failing_jobs": ["dbt_build"],
            "jobs": {"dbt_build": {"last_error": "DbtError: dbt build exited 2\ndetails"}},
        },
        "postgres": {"status": "down", "error": "connection refused"},
    },
}


def test_each_degraded_component_is_named_with_its_reason() -> None:
    assert problems(HEALTH, []) == [
        {"component": "binance", "status": "degraded",
         "reason": "venue disconnected, reconnecting (0 connections open): refused"},
        {"component": "scheduler", "status": "failing",
         "reason": "dbt_build failed: DbtError: dbt build exited 2"},
        {"component": "postgres", "status": "down", "reason": "connection refused"},
    ]  # fmt: skip


def test_an_open_gap_is_a_problem_and_a_contiguous_range_is_not() -> None:
    ok = {"status": "ok", "components": {"storage": {"status": "ok"}}}
    assert problems(ok, [_position("BTC-USDT", [(1, 10)])]) == []
    gappy = [_position("BTC-USDT", [(1, 10), (14, 20)]), _position("ETH-USDT", [(1, 2), (4, 4)])]
    assert problems(ok, gappy) == [
        {"component": "gaps", "status": "open",
         "reason": "4 trade ids missing (binance:BTC-USDT 3, binance:ETH-USDT 1)"},
    ]  # fmt: skip


def test_positions_that_cannot_be_read_leave_the_health_as_it_is() -> None:
    def down() -> list[Position]:
        raise StorageError("postgres is down")

    body = with_problems(HEALTH, down)
    assert body["status"] == "degraded"
    assert [p["component"] for p in body["problems"]] == ["binance", "scheduler", "postgres"]
