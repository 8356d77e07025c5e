"""Chunk seams: how much bigger the frame-to-frame change is at chunk boundaries than inside chunks.

ratio = mean |frame[b] - frame[b - 1]| over boundary frames b, divided by the median of the same
difference over all other consecutive pairs. About 1 means invisible seams; a spike means a visible jump.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.metrics.frames import to_unit_rgb

_FLOOR = 1e-6  # keeps the ratio finite on a perfectly static video


@dataclass(frozen=True)
class SeamResult:
    ratio: float
    boundary_mean: float  # mean absolute difference (0..1 units) across the seams
    interior_median: float  # median absolute difference between consecutive frames inside chunks
    differences: Tensor  # [T - 1]: differences[i] = mean |frame[i + 1] - frame[i]|


def frame_differences(frames: Tensor) -> Tensor:
    """[T, 3, H, W] (uint8 or float in [-1, 1]) -> mean absolute difference of consecutive frames [T - 1]."""
    rgb = to_unit_rgb(frames)
    return (rgb[1:] - rgb[:-1]).abs().mean(dim=(-3, -2, -1))


def seam_ratio(frames: Tensor, boundaries: Sequence[int]) -> SeamResult:
    """``boundaries``: indices of the first frame of every chunk after the first (each in 1..T-1)."""
    diffs = frame_differences(frames)
    t = frames.shape[0]
    idx = sorted(set(int(b) for b in boundaries))
    if not idx:
        raise ValueError("at least one chunk boundary is needed")
    if idx[0] < 1 or idx[-1] > t - 1:
        raise ValueError(f"boundaries must lie in 1..{t - 1}, got {idx}")
    is_seam = torch.zeros(t - 1, dtype=torch.bool)
    is_seam[torch.tensor(idx) - 1] = True
    if bool(is_seam.all()):
        raise ValueError("every frame pair is a boundary; no interior differences to compare with")
    boundary_mean = float(diffs[is_seam].mean())
    interior_median = float(diffs[~is_seam].median())
    return SeamResult(
        ratio=boundary_mean / max(interior_median, _FLOOR),
        boundary_mean=boundary_mean,
        interior_median=interior_median,
        differences=diffs,
    )
