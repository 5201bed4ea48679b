"""The command line as users run it: exact command forms, output formats, clear errors, and a
replay killed with SIGKILL that, run again, ends exactly like an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.reference import SUM_FIELDS, sums_agree

pytestmark = pytest.mark.integration


def marketpipe(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "marketpipe.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"marketpipe {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def candles_json(data_dir: Path, interval: str = "1m") -> list[dict[str, object]]:
    out = marketpipe(
        "query",
        "candles",
        "--data-dir",
        str(data_dir),
        "--symbol",
        "BTCUSDT",
        "--interval",
        interval,
        "--format",
        "json",
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def assert_same_candles(left: list[dict[str, object]], right: list[dict[str, object]]) -> None:
    """Exact on everything but sums of floats, which may differ by summation order."""
    assert len(left) == len(right)
    for a, b in zip(left, right, strict=True):
        assert {k: v for k, v in a.items() if k not in SUM_FIELDS} == {
            k: v for k, v in b.items() if k not in SUM_FIELDS
        }
        for name in SUM_FIELDS:
            assert sums_agree(a[name], b[name]), name  # type: ignore[arg-type]


def assert_close_values(a: object, b: object, where: str) -> None:
    """Equal, except floats, which may differ by summation order (`sums_agree`)."""
    if isinstance(a, float) or isinstance(b, float):
        assert sums_agree(a, b), where  # type: ignore[arg-type]
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_close_values(a[key], b[key], f"{where}.{key}")
    else:
        assert a == b, where


def assert_same_alerts(left: list[dict[str, object]], right: list[dict[str, object]]) -> None:
    assert [a["alert_id"] for a in left] == [b["alert_id"] for b in right]
    for a, b in zip(left, right, strict=True):
        details = (json.loads(str(a.pop("details"))), json.loads(str(b.pop("details"))))
        assert_close_values(a, b, str(a["alert_id"]))
        assert_close_values(*details, f"{a['alert_id']}.details")


def test_replay_then_query_json_uses_design_names_iso_times_sorted(
    tmp_path: Path, recorded_files: list[Path]
) -> None:
    marketpipe("replay", *map(str, recorded_files), "--data-dir", str(tmp_path))
    rows = candles_json(tmp_path)
    assert len(rows) == 12
    assert list(rows[0]) == [
        "exchange",
        "symbol",
        "interval",
        "open_time",
        "close_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "quote_volume",
        "trade_count",
        "taker_buy_volume",
        "taker_buy_quote_volume",
        "vwap",
        "first_trade_id",
        "last_trade_id",
        "is_final",
        "revision",
    ]
    assert rows[0]["open_time"] == "2024-08-08T23:54:00Z" and rows[0]["open"] == 61837.63
    assert [r["open_time"] for r in rows] == sorted(r["open_time"] for r in rows)
    trades = json.loads(
        marketpipe(
            "query",
            "trades",
            "--data-dir",
            str(tmp_path),
            "--symbol",
            "BTC-USDT",
            "--limit",
            "2",
            "--format",
            "json",
        ).stdout
    )
    assert trades[0]["trade_id"] == 3735683259 and trades[0]["side"] == "sell"
    assert str(trades[0]["ts_event"]).endswith("Z")
    window = json.loads(
        marketpipe(
            "query",
            "candles",
            "--data-dir",
            str(tmp_path),
            "--start",
            "2024-08-09T00:00:00Z",
            "--end",
            "2024-08-09T00:02:00Z",
            "--format",
            "json",
        ).stdout
    )
    assert [r["open_time"] for r in window] == ["2024-08-09T00:00:00Z", "2024-08-09T00:01:00Z"]
    csv_out = marketpipe("query", "alerts", "--data-dir", str(tmp_path), "--format", "csv").stdout
    assert (
        csv_out.splitlines()[0].startswith("alert_id,kind,severity")
        and len(csv_out.splitlines()) == 10
    )
    status = marketpipe("status", "--data-dir", str(tmp_path)).stdout
    assert "BTC-USDT" in status and "100.0000 %" in status


def test_captured_jsonl_replays_to_the_same_candles(
    tmp_path: Path, recorded_files: list[Path]
) -> None:
    first = tmp_path / "first"
    marketpipe("replay", *map(str, recorded_files), "--data-dir", str(first))
    capture = tmp_path / "capture.jsonl"
    capture.write_text(
        marketpipe("query", "trades", "--data-dir", str(first), "--format", "jsonl").stdout
    )
    second = tmp_path / "second"
    marketpipe("replay", str(capture), "--data-dir", str(second))
    assert_same_candles(candles_json(second), candles_json(first))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "candles", "--interval", "7m"], "7m"),
        (["query", "candles", "--start", "yesterday"], "ISO-8601"),
        (["query", "candles", "--symbol", "???"], "symbol"),
        (["replay", "/nonexistent.gz"], "no such file"),
        (["query", "trades"], "no data in"),
        (["run", "--venues", "binance,nasdaq"], "unknown venue 'nasdaq'"),
        (["demo", "--venues", "nyse", "--duration", "1"], "unknown venue 'nyse'"),
    ],
)
def test_bad_parameters_get_a_clear_error_and_nonzero_exit(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = marketpipe(*args, "--data-dir", str(tmp_path / "empty"), check=False)
    assert result.returncode != 0
    assert message.lower() in (result.stdout + result.stderr).lower()
    assert "Traceback" not in result.stderr


def test_bad_config_fails_at_start_naming_the_field(
    tmp_path: Path, recorded_files: list[Path]
) -> None:
    result = marketpipe(
        "replay",
        str(recorded_files[0]),
        "--data-dir",
        str(tmp_path),
        env={"MARKETPIPE_ENGINE__GRACE_S": "-3"},
        check=False,
    )
    assert result.returncode == 2
    assert "engine.grace_s" in result.stderr and "MARKETPIPE_ENGINE__GRACE_S" in result.stderr


def test_replay_killed_with_sigkill_and_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, recorded_files: list[Path]
) -> None:
    clean = tmp_path / "clean"
    marketpipe("replay", *map(str, recorded_files), "--data-dir", str(clean))
    crashed = tmp_path / "crashed"
    # Small batches, paced at 60x event time (~11 s for the whole recording): many commits to
    # land the kill between.
    env = {**os.environ, "MARKETPIPE_ENGINE__BATCH_MAX_TRADES": "300"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marketpipe.cli",
            "replay",
            *map(str, recorded_files),
            "--data-dir",
            str(crashed),
            "--speed",
            "60x",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill once the replay has started committing (start-up alone can take seconds on a busy
    # machine), then a little later, part-way through the ~11 s of paced input.
    deadline = time.monotonic() + 60
    while not (crashed / "warm.duckdb").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3.0)
    assert process.poll() is None, "the replay finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = json.loads(
        marketpipe("query", "trades", "--data-dir", str(crashed), "--format", "json").stdout
    )
    assert 0 < len(partial) < 19_904, "the kill should land part-way"
    marketpipe("replay", *map(str, recorded_files), "--data-dir", str(crashed))
    for interval in ("1m", "5m", "1h"):
        assert_same_candles(candles_json(crashed, interval), candles_json(clean, interval))
    alerts = [
        json.loads(marketpipe("query", "alerts", "--data-dir", str(d), "--format", "json").stdout)
        for d in (clean, crashed)
    ]
    assert_same_alerts(alerts[0], alerts[1])
    trades = json.loads(
        marketpipe("query", "trades", "--data-dir", str(crashed), "--format", "json").stdout
    )
    assert len(trades) == 19_904 == len({t["trade_id"] for t in trades})


# ---- replay of every venue -------------------------------------------------------------------

COINBASE_RECORDING = (
    Path(__file__).parents[1] / "data" / "coinbase" / "cryptofeed-COINBASE.ws.28.0.gz"
)


def test_replay_help_explains_the_formats_and_the_venue() -> None:
    text = " ".join(marketpipe("replay", "--help", env={"COLUMNS": "200"}).stdout.split())
    for phrase in (
        "<recv_ns> <json>",
        "cryptofeed recordings",
        "capture JSONL",
        "query trades --format jsonl",
        "Binance trade CSVs",
        "--venue",
        "dead_letters",
    ):
        assert phrase in text, phrase


def test_replay_with_an_unknown_venue_fails_at_start_naming_it(tmp_path: Path) -> None:
    result = marketpipe(
        "replay", str(COINBASE_RECORDING), "--venue", "nasdaq", "--data-dir", str(tmp_path),
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown venue 'nasdaq'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "warm.duckdb").exists()


def test_coinbase_recording_and_its_capture_replay_to_the_same_candles(tmp_path: Path) -> None:
    first = tmp_path / "first"
    result = marketpipe("replay", str(COINBASE_RECORDING), "--data-dir", str(first))
    assert "coinbase" in result.stderr  # the summary's venues
    capture = tmp_path / "capture.jsonl"
    capture.write_text(
        marketpipe(
            "query", "trades", "--data-dir", str(first), "--exchange", "coinbase", "--format",
            "jsonl",
        ).stdout
    )  # fmt: skip
    assert len(capture.read_text().splitlines()) == 107
    second = tmp_path / "second"
    marketpipe("replay", str(capture), "--data-dir", str(second))

    def candles(data_dir: Path) -> list[dict[str, object]]:
        return json.loads(  # type: ignore[no-any-return]
            marketpipe(
                "query", "candles", "--data-dir", str(data_dir), "--exchange", "coinbase",
                "--symbol", "SKL-USD", "--format", "json",
            ).stdout
        )  # fmt: skip

    got = candles(second)
    assert got and all(c["exchange"] == "coinbase" for c in got)
    assert_same_candles(got, candles(first))


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, False),
        (["--market-hours"], {}, True),
        ([], {"MARKETPIPE_SIMULATOR__MARKET_HOURS": "true"}, True),
    ],
    ids=["around-the-clock", "flag", "config"],
)
def test_demo_market_hours_come_from_the_flag_or_the_config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    expected: bool,
) -> None:
    """The flag reaches the demo (whose stocks' hours tests/simulator tests); no run here."""
    import marketpipe.embedded.demo as demo_module
    from marketpipe.cli.app import app

    seen: dict[str, object] = {}

    async def fake_demo(settings: object, **kwargs: object) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(demo_module, "demo", fake_demo)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(
        app, ["demo", "--venues", "finnhub", "--data-dir", str(tmp_path), *args]
    )
    assert result.exit_code == 0, result.output
    assert seen["market_hours"] is expected
