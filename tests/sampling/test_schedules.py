"""Flow-matching grids: endpoints, the official shift formula, SDEdit start times."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.sampling.schedules import (
    SHIFT_480P, SHIFT_720P, default_shift, flow_timesteps, shift_fraction, unshift_fraction,
)


@pytest.mark.parametrize("steps", [1, 4, 40])
@pytest.mark.parametrize("shift", [1.0, 7.0, 11.0])
def test_grid_endpoints_and_order(steps, shift):
    grid = flow_timesteps(steps, shift)
    assert grid.shape == (steps + 1,)
    assert grid[0] == 1000.0 and grid[-1] == 0.0
    assert torch.all(grid[1:] < grid[:-1])


def test_unshifted_grid_is_the_official_linspace():
    grid = flow_timesteps(40, shift=1.0)
    want = torch.cat([torch.linspace(1000, 1, 40, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(grid, want)


def test_shift_matches_the_official_formula():
    steps, s = 8, 7.0
    base = torch.linspace(1000, 1, steps, dtype=torch.float64)
    u = base / 1000
    want = 1000 * s * u / (1 + (s - 1) * u)
    torch.testing.assert_close(flow_timesteps(steps, s)[:-1], want)
    # larger shifts keep more of the steps at high noise
    assert flow_timesteps(steps, 11.0)[steps // 2] > flow_timesteps(steps, 7.0)[steps // 2]


def test_shift_inverse_round_trip():
    u = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(unshift_fraction(shift_fraction(u, 7.0), 7.0), u)


@pytest.mark.parametrize("start", [0.3, 0.75])
def test_sdedit_start_below_one(start):
    grid = flow_timesteps(10, 7.0, start=start)
    assert grid[0].item() == pytest.approx(1000 * start)
    assert grid[-1] == 0 and grid.shape == (11,)
    assert torch.all(grid[1:] < grid[:-1])


def test_named_defaults_and_errors():
    assert default_shift("480p") == SHIFT_480P == 7.0
    assert default_shift("720p") == SHIFT_720P == 11.0
    with pytest.raises(ValueError, match="480p"):
        default_shift("1080p")
    with pytest.raises(ValueError, match="steps"):
        flow_timesteps(0)
    with pytest.raises(ValueError, match="start"):
        flow_timesteps(4, start=1.5)
