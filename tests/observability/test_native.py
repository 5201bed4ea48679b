"""The native path's status: active when the extension loads, off by MARKETPIPE_NATIVE=0,
and said once in the log when inactive."""

import logging
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpipe.model.errors import SourceError
from marketpipe.observability import native
from marketpipe.sources.replay import ReplayReader


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(native.ENV, raising=False)
    native.reset()
    yield
    native.reset()


def test_the_extension_is_active_where_cargo_built_it() -> None:
    state = native.status()
    if shutil.which("cargo") is None:
        pytest.skip(f"no cargo on this machine: {state.reason}")
    # make install builds it wherever cargo is; inactive here is a broken build, not a skip.
    assert state.active, state.reason
    assert state.version == "0.1.0"
    assert native.extension() is not None


@pytest.mark.parametrize("value", ["0", "off", "false", "NO"])
def test_the_environment_switches_it_off_and_the_log_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    monkeypatch.setenv(native.ENV, value)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native.extension() is None
        assert native.extension() is None
        state = native.status()
    assert not state.active
    assert state.reason == f"switched off by {native.ENV}={value}"
    assert [r.getMessage() for r in caplog.records] == [
        f"native path inactive, running on the Python path: {state.reason}"
    ]


def test_a_missing_extension_is_reported_with_how_to_build_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(native, "MODULE", "marketpipe_native_missing")
    state = native.status()
    assert not state.active
    assert "cannot be loaded" in state.reason and "make install" in state.reason


def test_an_old_build_without_the_candle_fold_falls_back_saying_what_it_lacks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A build from before the native fold: it decodes frames, but folds no candles.
    old = types.ModuleType("marketpipe_native_old")
    old.decode_binance_block = lambda *args: None  # type: ignore[attr-defined]
    old.__version__ = "0.0.9"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, old.__name__, old)
    monkeypatch.setattr(native, "MODULE", old.__name__)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native.extension() is None
    state = native.status()
    assert (state.active, state.version) == (False, "0.0.9")
    assert state.reason == (
        "the installed marketpipe_native_old 0.0.9 lacks partial_candles, rollup_partials, "
        "fold_candles; `make install` rebuilds it"
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"native path inactive, running on the Python path: {state.reason}"
    ]


def test_replay_runs_on_the_python_path_when_switched_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(native.ENV, "0")
    path = tmp_path / "one.recv"
    path.write_bytes(
        b'1000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":5,'
        b'"p":"2.5","q":"1","T":3,"m":false}}\n'
    )
    [chunk] = ReplayReader([path])
    assert chunk.trades.column("trade_id").to_pylist() == [5]
    with pytest.raises(SourceError, match="native path was asked for"):
        list(ReplayReader([path], native=True))
