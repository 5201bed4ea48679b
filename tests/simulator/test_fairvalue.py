"""The shared fair value and a venue's basis: one path whoever asks, how far and in what order."""

from __future__ import annotations

import numpy as np
import pytest

from marketpipe.simulator.fairvalue import STEP_US, FairValue, VenueBasis

pytestmark = pytest.mark.unit

START = 1_700_000_000_000_000


def _fair() -> FairValue:
    return FairValue(60_000.0, 0.55, np.random.SeedSequence([7, 1]), START)


def test_the_path_is_the_same_however_it_is_queried() -> None:
    times = START + np.arange(0, 3_600_000_000, 77_777, dtype=np.int64)
    whole = _fair().at(times)
    pieces = _fair()
    parts = np.concatenate([pieces.at(chunk) for chunk in np.array_split(times, 37)])
    backwards = _fair()
    backwards.at(times[-1:])  # one far query first extends the whole path at once
    assert np.array_equal(whole, parts)
    assert np.array_equal(whole, backwards.at(times))


def test_the_path_starts_at_the_start_price_and_interpolates_between_grid_points() -> None:
    fair = _fair()
    assert fair.at([START])[0] == pytest.approx(np.log(60_000.0))
    a, b = fair.at([START + 10 * STEP_US, START + 11 * STEP_US])
    assert fair.at([START + 10 * STEP_US + STEP_US // 4])[0] == pytest.approx(0.75 * a + 0.25 * b)
    assert fair.at([START - 5_000_000])[0] == fair.at([START])[0]  # before the start: clamped


def test_an_hour_moves_like_btc_neither_flat_nor_wild() -> None:
    prices = np.exp(_fair().at(START + np.arange(0, 3_600_000_000, 1_000_000)))
    returns = np.diff(np.log(prices))
    assert 0.0 < np.abs(returns).max() < 0.02
    assert prices.min() / 60_000 > 0.5 and prices.max() / 60_000 < 1.5


def test_a_venue_basis_stays_within_its_clip_and_moves() -> None:
    basis = VenueBasis(np.random.SeedSequence([3]), START, sigma_bps=2.0, max_bps=3.0)
    values = basis.at(START + np.arange(0, 1_800_000_000, 100_000)) * 1e4
    assert np.abs(values).max() <= 3.0 + 1e-9
    assert values.std() > 0.3  # not stuck at zero
