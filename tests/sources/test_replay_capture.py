"""Our capture JSONL replays for any venue: each line's exchange, or --venue for every line; an
unknown or missing venue on the first line fails at start, on a later line is a dead letter."""

import json
from pathlib import Path

import pyarrow as pa
import pytest

from marketpipe.model.errors import SourceError
from marketpipe.model.schemas import TRADE_INT_SCHEMA
from marketpipe.sources.replay import ReplayReader


def line(exchange: str | None, trade_id: int, **extra: object) -> str:
    row: dict[str, object] = {
        "symbol": "BTC-USD", "trade_id": trade_id, "price": 61000.0 + trade_id, "qty": 0.5,
        "side": "sell", "ts_event": "2024-08-09T00:00:01.250000Z", "ts_recv": 1723161601300000,
    }  # fmt: skip
    if exchange is not None:
        row["exchange"] = exchange
    return json.dumps({**row, **extra})


def read(path: Path, venue: str | None = None) -> tuple[list[dict[str, object]], list[str]]:
    chunks = list(ReplayReader([path], venue=venue))
    trades = pa.concat_tables([c.trades for c in chunks]).cast(TRADE_INT_SCHEMA).to_pylist()
    return trades, [f"{d.context}: {d.error}" for c in chunks for d in c.dead_letters]


def test_each_line_names_its_venue(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text(
        "\n".join([line("coinbase", 1), line("Kraken", 2), line("finnhub", 3, symbol="AAPL-USD")])
    )
    trades, dead = read(path)
    assert dead == []
    assert [(t["exchange"], t["symbol"], t["trade_id"]) for t in trades] == [
        ("coinbase", "BTC-USD", 1), ("kraken", "BTC-USD", 2), ("finnhub", "AAPL-USD", 3)
    ]  # fmt: skip
    assert trades[0]["ts_event"] == 1_723_161_601_250_000
    assert trades[0]["ts_recv"] == 1_723_161_601_300_000
    assert trades[0]["side"] == "sell" and trades[0]["price"] == 61001.0


def test_venue_names_every_line_and_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text(line(None, 1) + "\n" + line("binance", 2) + "\n")
    trades, dead = read(path, venue="coinbase")
    assert dead == []
    assert [t["exchange"] for t in trades] == ["coinbase", "coinbase"]


def test_a_first_line_of_no_or_an_unknown_venue_fails_at_start(tmp_path: Path) -> None:
    nameless = tmp_path / "nameless.jsonl"
    nameless.write_text(line(None, 1) + "\n")
    with pytest.raises(SourceError, match=r"nameless.jsonl: line 1: .*names no exchange.*--venue"):
        ReplayReader([nameless])
    odd = tmp_path / "odd.jsonl"
    odd.write_text(line("nasdaq", 1) + "\n")
    with pytest.raises(SourceError, match=r"odd.jsonl: line 1: unknown venue 'nasdaq'"):
        ReplayReader([odd])


def test_later_bad_lines_are_dead_lettered_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text(
        "\n".join(
            [
                line("coinbase", 1),
                line("nasdaq", 2),
                line(None, 3),
                line("coinbase", 4, side="up"),
                line("coinbase", 5, symbol="???"),
                '{"exchange": "coinbase", "symbol": "BTC-USD"',
                line("coinbase", 7),
            ]
        )
        + "\n"
    )
    trades, dead = read(path)
    assert [t["trade_id"] for t in trades] == [1, 7]
    assert [d.split(": ", 1)[0] for d in dead] == [f"{path}:{n}" for n in (2, 3, 4, 5, 6)]
    assert "unknown venue 'nasdaq'" in dead[0] and "names no exchange" in dead[1]
    assert "side 'up'" in dead[2]
