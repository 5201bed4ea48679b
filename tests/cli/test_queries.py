"""`marketpipe query` and `status` as a user types them: an impossible question gets one line
naming what does not exist and how to find what does (exit 2), a missing data dir is said so
and not created, and a configured symbol without data yet is an empty answer (exit 0)."""

from pathlib import Path

import duckdb
import pytest

from tests.cli.test_cli import marketpipe
from tests.conftest import BINANCE_08

pytestmark = pytest.mark.integration

STATUS_HINT = "`marketpipe status --data-dir {d}` lists the stored symbols"
CONFIG_HINT = "`symbols` in marketpipe.toml (or MARKETPIPE_SYMBOLS) the configured ones"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("queries")
    marketpipe("replay", str(BINANCE_08), "--data-dir", str(root / "data"))
    return root / "data"


def stored_counts(data_dir: Path) -> tuple[int, ...]:
    with duckdb.connect(str(data_dir / "warm.duckdb"), read_only=True) as db:
        return tuple(
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ("trades_recent", "candles", "alerts", "positions")
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--symbol", "FOOUSDT"],
            "unknown symbol 'FOOUSDT': no data for FOO-USDT in {d}, and it is not configured; "
            f"{STATUS_HINT}, {CONFIG_HINT}",
        ),
        (
            ["--symbol", "FOOBAR"],
            "unknown symbol 'FOOBAR': cannot split symbol 'FOOBAR' into base and quote; write "
            f"it as BTC-USDT or BTCUSDT; {STATUS_HINT}, {CONFIG_HINT}",
        ),
        (
            ["--symbol", "FOOUSDT", "--exchange", "Binance"],
            "unknown symbol 'FOOUSDT' on binance: no data for FOO-USDT in {d}, and it is not "
            f"configured; {STATUS_HINT}, {CONFIG_HINT}",
        ),
        (
            ["--exchange", "kraken"],
            "unknown exchange 'kraken': {d} holds binance, and the configured venues are binance; "
            "`marketpipe status --data-dir {d}` lists what is stored",
        ),
        (["--interval", "7m"], "--interval '7m' is not one of 1m, 5m, 15m, 1h, 4h, 1d"),
        (["--limit", "0"], "--limit must be 1 or more, not 0"),
        (
            ["--start", "2024-08-09T00:00:00Z", "--end", "2024-08-08T00:00:00Z"],
            "--start (2024-08-09T00:00:00Z) must be before --end (2024-08-08T00:00:00Z); "
            "the end is exclusive",
        ),
        (
            ["--start", "2024-08-09T00:00:00Z", "--end", "2024-08-09T00:00:00Z"],
            "--start (2024-08-09T00:00:00Z) must be before --end (2024-08-09T00:00:00Z); "
            "the end is exclusive",
        ),
    ],
)
def test_impossible_queries_name_what_is_wrong_in_one_line(
    data_dir: Path, args: list[str], message: str
) -> None:
    before = stored_counts(data_dir)
    for kind in ("candles", "trades", "alerts"):
        result = marketpipe("query", kind, "--data-dir", str(data_dir), *args, check=False)
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert result.stderr.splitlines() == [f"error: {message.format(d=data_dir)}"]
    assert stored_counts(data_dir) == before


def test_a_configured_symbol_without_data_is_an_empty_answer(data_dir: Path) -> None:
    # ETH-USDT is among the default symbols; FOO-USDT becomes valid once configured.
    eth = marketpipe("query", "trades", "--data-dir", str(data_dir), "--symbol", "ETHUSDT",
                     "--format", "json")  # fmt: skip
    assert (eth.returncode, eth.stdout) == (0, "[]\n")
    foo = marketpipe(
        "query", "candles", "--data-dir", str(data_dir), "--symbol", "FOOUSDT", "--format",
        "json", env={"MARKETPIPE_SYMBOLS": "BTCUSDT,FOOUSDT"},
    )  # fmt: skip
    assert (foo.returncode, foo.stdout) == (0, "[]\n")
    btc = marketpipe("query", "trades", "--data-dir", str(data_dir), "--symbol", "BTC-USDT",
                     "--limit", "2", "--format", "jsonl")  # fmt: skip
    assert len(btc.stdout.splitlines()) == 2


@pytest.mark.parametrize("command", [["query", "candles"], ["status"]])
def test_a_data_dir_that_does_not_exist_is_said_so_and_not_created(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "no-such-dir"
    result = marketpipe(*command, "--data-dir", str(missing), check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: no data in {missing}: the directory does not exist (check --data-dir; "
        "`marketpipe replay` or `marketpipe demo` creates one)"
    ]
    assert not missing.exists()


def test_a_data_dir_that_is_a_file_is_said_so(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("")
    result = marketpipe("status", "--data-dir", str(afile), check=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {afile} is not a directory (--data-dir takes a replay's, run's or demo's)"
    ]
