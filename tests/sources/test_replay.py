"""Replay reads every supported format; malformed lines become dead letters, never errors."""

import gzip
import zipfile
from pathlib import Path

import pytest

from marketpipe.model.errors import SourceError
from marketpipe.sources.replay import ReplayReader, detect_format
from tests.conftest import BINANCE_08

TRADE = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":%d,'
    '"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}'
)


def read_all(paths: list[Path]) -> tuple[list[int], int, int]:
    ids, dead, quotes = [], 0, 0
    for chunk in ReplayReader(paths):
        ids += chunk.trades.column("trade_id").to_pylist()
        dead += len(chunk.dead_letters)
        quotes += len(chunk.quotes)
    return ids, dead, quotes


def test_recorded_file_yields_every_trade_in_order() -> None:
    ids, dead, quotes = read_all([BINANCE_08])
    assert len(ids) == 9_757 and ids[0] == 3735683259 and ids[-1] == 3735693015
    assert dead == 0 and quotes >= 1


def test_malformed_and_reordered_key_frames_are_handled_line_by_line(tmp_path: Path) -> None:
    reordered = (
        '{"data":{"T":1723161255342,"m":false,"t":3,"s":"BTCUSDT","p":"1.5","q":"2","e":"trade","E":1},'
        '"stream":"btcusdt@trade"}'
    )
    lines = [
        f"1723161254087896568 {TRADE % 1}",
        "1723161254087896569 {not json",
        f"1723161254087896570 {TRADE % 2}"[:-30],  # truncated
        f"garbage {TRADE % 9}",
        f"1723161254087896571 {reordered}",
        "1723161254087896572 " + (TRADE % 4).replace('"0.02000000"', '"-1"'),  # negative qty
    ]
    path = tmp_path / "mixed.recv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    ids, dead, _ = read_all([path])
    assert sorted(ids) == [1, 3]
    assert dead == 4


def test_binance_csv_dumps_with_and_without_header_in_ms_and_us(tmp_path: Path) -> None:
    plain = tmp_path / "BTCUSDT-trades-2024-08-09.csv"
    plain.write_text(
        "5,61000.1,0.5,30500.05,1723161600000,True,True\n6,61000.2,0.1,6100.02,1723161600001,False,True\n"
    )
    with_header = tmp_path / "ETHUSDT-trades-2025-03-01.csv"
    with_header.write_text(
        "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n7,2000.5,1.0,2000.5,1740787200000123,true,true\n"
    )
    zipped = tmp_path / "SOLUSDT-trades-2024-08-09.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr(
            "SOLUSDT-trades-2024-08-09.csv", "8,150.0,2.0,300.0,1723161600002,false,true\n"
        )
    rows = []
    for chunk in ReplayReader([plain, with_header, zipped]):
        rows += chunk.trades.to_pylist()
    assert [(r["symbol"], r["trade_id"], r["side"]) for r in rows] == [
        ("BTC-USDT", 5, "sell"),
        ("BTC-USDT", 6, "buy"),
        ("ETH-USDT", 7, "sell"),
        ("SOL-USDT", 8, "buy"),
    ]
    assert rows[0]["ts_event"].timestamp() == 1723161600.0
    assert rows[2]["ts_event"].microsecond == 123  # microsecond dumps keep their precision


def test_unknown_formats_fail_before_any_work(tmp_path: Path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("hello world\n")
    with pytest.raises(SourceError, match="unrecognized replay format"):
        ReplayReader([BINANCE_08, odd])
    assert detect_format(BINANCE_08) == "recv"


def test_frames_with_numbers_that_do_not_fit_are_dead_lettered_not_fatal(tmp_path: Path) -> None:
    good = (
        '1723161600003510000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161600001,'
        '"s":"BTCUSDT","t":894624031,"p":"59999.92000000","q":"0.00040000","T":1723161600001,'
        '"m":false,"M":true}}'
    )
    bad = [
        good.replace('"p":"59999.92000000"', '"p":"."'),  # matched [0-9.]+ and broke the cast
        good.replace('"p":"59999.92000000"', '"p":"1.2.3"'),
        good.replace('"q":"0.00040000"', '"q":"0.00000000"'),  # not a trade: zero quantity
        good.replace('"t":894624031', '"t":99999999999999999999999'),  # beyond int64
        good.replace('"T":1723161600001', '"T":99999999999999999'),  # µs beyond int64
        good.replace("1723161600003510000", "99999999999999999999999", 1),
    ]
    path = tmp_path / "bad.recv"
    path.write_text("\n".join([good, *bad]) + "\n")
    (chunk,) = list(ReplayReader([path]))
    assert chunk.trades.column("trade_id").to_pylist() == [894624031]
    assert sorted(d.raw.decode() for d in chunk.dead_letters) == sorted(bad)


def test_a_csv_not_named_after_its_symbol_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("1,100.0,1.0,100.0,1723161600000,true,true\n")
    with pytest.raises(SourceError, match="named after its symbol"):
        list(ReplayReader([path]))
