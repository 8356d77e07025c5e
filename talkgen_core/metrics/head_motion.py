"""Head motion from a colour only the head carries: where the hair is, frame by frame, and how much it moves.

The centroid of the pixels near the identity's hair colour (soft weights, ``colour_closeness``) inside a
region around the head follows the head's translation with sub-pixel precision; its spread over a video is
the head's motion in pixels. A frozen head gives 0; a video whose head moves like the training clips' should
give about their spread. Spreads of long videos grow with the slow drifts a short clip cannot show, so compare
windows of the training clips' length (``windowed_spread``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from talkgen_core.metrics.colour import colour_closeness
from talkgen_core.metrics.frames import to_unit_rgb

HAIR_DELTA_E_TOLERANCE = 12.0


def colour_centroids(
    frames: Tensor,  # [T, 3, H, W] uint8 or float in [-1, 1]
    colour: tuple[float, float, float],  # sRGB in [0, 1]
    region: Tensor | None = None,  # [H, W] bool: only these pixels count (None: the whole frame)
    tolerance: float = HAIR_DELTA_E_TOLERANCE,
) -> Tensor:
    """Centroid (row, column) in pixels of the pixels near ``colour``: ``[T, 2]``; NaN where none is near."""
    weight = colour_closeness(to_unit_rgb(frames), colour, tolerance)  # [T, H, W]
    if region is not None:
        if region.shape != weight.shape[-2:] or region.dtype != torch.bool:
            raise ValueError(f"region must be an [H, W] = {tuple(weight.shape[-2:])} bool mask, got "
                             f"{tuple(region.shape)} {region.dtype}")
        weight = weight * region
    rows = torch.arange(weight.shape[-2], dtype=torch.float64).view(-1, 1)
    cols = torch.arange(weight.shape[-1], dtype=torch.float64).view(1, -1)
    w = weight.double()
    total = w.sum(dim=(-2, -1))
    centre = torch.stack([(w * rows).sum(dim=(-2, -1)), (w * cols).sum(dim=(-2, -1))], dim=-1)
    return torch.where(total[:, None] > 1e-9, centre / total.clamp_min(1e-12)[:, None], math.nan)


def centroid_spread(centroids: Tensor) -> float:
    """RMS distance in pixels of the centroids ``[T, 2]`` from their mean (frames without one are skipped);
    0 for fewer than two frames with a centroid."""
    valid = centroids[~torch.isnan(centroids).any(dim=-1)].double()
    if valid.shape[0] < 2:
        return 0.0
    return float((valid - valid.mean(dim=0)).pow(2).sum(dim=-1).mean().sqrt())


def windowed_spread(centroids: Tensor, window: int) -> float:
    """Mean ``centroid_spread`` over consecutive non-overlapping windows of ``window`` frames (a shorter tail
    is dropped; a video shorter than one window is measured whole)."""
    if window < 2:
        raise ValueError(f"window must be at least 2 frames, got {window}")
    count = centroids.shape[0] // window
    if count == 0:
        return centroid_spread(centroids)
    return sum(centroid_spread(centroids[i * window : (i + 1) * window]) for i in range(count)) / count
