"""Divergence episodes: their window, their offset, and the CLI spelling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marketpipe.simulator.divergence import Divergence, log_offsets

pytestmark = pytest.mark.unit

START = 1_700_000_000_000_000


def test_the_window_is_half_open_and_the_offset_exact() -> None:
    episode = Divergence("kraken", "BTC", 80.0, start_s=10.0, duration_s=5.0)
    start, end = episode.window_us(START)
    t = np.array([start - 1, start, end - 1, end], dtype=np.float64)
    offsets = log_offsets([episode], "kraken", "BTC", START, t)
    assert offsets.tolist() == [0.0, math.log1p(0.008), math.log1p(0.008), 0.0]
    assert not log_offsets([episode], "coinbase", "BTC", START, t).any()
    assert not log_offsets([episode], "kraken", "ETH", START, t).any()


def test_overlapping_episodes_add_up() -> None:
    a = Divergence("kraken", "BTC", 50.0, 0.0, 10.0)
    b = Divergence("kraken", "BTC", -50.0, 5.0, 10.0)
    t = np.array([START + 2_000_000, START + 7_000_000, START + 12_000_000], dtype=np.float64)
    got = log_offsets([a, b], "kraken", "BTC", START, t)
    assert got == pytest.approx(
        [math.log1p(0.005), math.log1p(0.005) + math.log1p(-0.005), math.log1p(-0.005)]
    )


def test_the_cli_spelling_parses_and_bad_ones_say_what_is_expected() -> None:
    assert Divergence.parse("Kraken:btc:80:30:20") == Divergence("kraken", "BTC", 80.0, 30.0, 20.0)
    with pytest.raises(ValueError, match="venue:asset:bps:start_s:duration_s"):
        Divergence.parse("kraken:BTC:80")
    with pytest.raises(ValueError, match="duration_s > 0"):
        Divergence.parse("kraken:BTC:80:30:0")
