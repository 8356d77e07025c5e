"""Frame format handling shared by the metrics.

Every metric takes frames as ``[T, 3, H, W]``: either uint8 in [0, 255] or floating point in [-1, 1]
(the core's pixel convention). They are converted once to float32 sRGB in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_unit_rgb(frames: Tensor) -> Tensor:
    """uint8 [0, 255] or float [-1, 1] frames ``[..., 3, H, W]`` -> float32 in [0, 1], same shape."""
    if frames.dim() < 3 or frames.shape[-3] != 3:
        raise ValueError(f"frames must be [..., 3, H, W], got shape {tuple(frames.shape)}")
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    if not frames.is_floating_point():
        raise TypeError(f"frames must be uint8 or floating point, got {frames.dtype}")
    return ((frames.float() + 1.0) * 0.5).clamp(0.0, 1.0)
