import math

import pytest
import torch

from talkgen_core.metrics.head_motion import centroid_spread, colour_centroids, windowed_spread

RED = (1.0, 0.0, 0.0)


def _square_at(rows: list[int], cols: list[int]) -> torch.Tensor:
    """A 3 x 3 red square on black at each (row, col): uint8 [T, 3, 20, 20]."""
    frames = torch.zeros(len(rows), 3, 20, 20, dtype=torch.uint8)
    for t, (r, c) in enumerate(zip(rows, cols)):
        frames[t, 0, r - 1 : r + 2, c - 1 : c + 2] = 255
    return frames


def test_centroid_follows_a_moving_patch_and_a_static_one_has_no_spread():
    moving = colour_centroids(_square_at([5, 7, 9], [10, 10, 13]), RED)
    assert moving.tolist() == [pytest.approx([5.0, 10.0]), pytest.approx([7.0, 10.0]), pytest.approx([9.0, 13.0])]
    static = colour_centroids(_square_at([6] * 8, [6] * 8), RED)
    assert centroid_spread(static) == 0.0


def test_spread_is_the_rms_distance_from_the_mean():
    centroids = torch.tensor([[0.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 2.0]])
    assert centroid_spread(centroids) == pytest.approx(math.sqrt(2.0))
    nan_row = torch.tensor([[math.nan, math.nan]])
    assert centroid_spread(torch.cat([centroids, nan_row])) == pytest.approx(math.sqrt(2.0))  # skipped


def test_region_and_missing_colour():
    frames = _square_at([5, 15], [5, 15])
    top_left = torch.zeros(20, 20, dtype=torch.bool)
    top_left[:10, :10] = True
    inside = colour_centroids(frames, RED, region=top_left)
    assert inside[0].tolist() == pytest.approx([5.0, 5.0]) and torch.isnan(inside[1]).all()
    with pytest.raises(ValueError, match="bool mask"):
        colour_centroids(frames, RED, region=top_left.float())


def test_windowed_spread_ignores_a_slow_drift_between_windows():
    steps = torch.tensor([[0.0, 0.0], [0.0, 1.0]]).repeat(4, 1)  # jitter of 0.5 px ...
    drift = torch.arange(8, dtype=torch.float32).div(2).floor().mul(10).view(-1, 1) * torch.tensor([[1.0, 0.0]])
    centroids = steps + drift  # ... plus a 10 px jump every second frame pair
    assert windowed_spread(centroids, 2) == pytest.approx(0.5)
    assert centroid_spread(centroids) > 10.0
    with pytest.raises(ValueError, match="at least 2 frames"):
        windowed_spread(centroids, 1)
