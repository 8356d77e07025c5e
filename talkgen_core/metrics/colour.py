"""sRGB -> CIELAB (D65) conversion and the CIE76 colour difference, on torch tensors.

Written from the published formulas: sRGB transfer function -> linear RGB -> XYZ (D65 primaries) ->
L*a*b* with the CIE cube-root companding and its linear segment near black.
"""

from __future__ import annotations

import torch
from torch import Tensor

_RGB_TO_XYZ = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_D65_WHITE = torch.tensor([0.95047, 1.0, 1.08883])
_EPSILON = 216.0 / 24389.0
_KAPPA = 24389.0 / 27.0


def srgb_to_linear(rgb: Tensor) -> Tensor:
    """Undo the sRGB transfer curve; input in [0, 1]."""
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def srgb_to_lab(rgb: Tensor, channel_dim: int = -3) -> Tensor:
    """sRGB in [0, 1] with 3 channels at ``channel_dim`` -> L*a*b* (L in [0, 100]), same layout."""
    moved = rgb.float().movedim(channel_dim, -1)
    xyz = srgb_to_linear(moved.clamp(0.0, 1.0)) @ _RGB_TO_XYZ.T
    ratio = xyz / _D65_WHITE
    f = torch.where(ratio > _EPSILON, ratio.clamp_min(1e-12) ** (1.0 / 3.0), (_KAPPA * ratio + 16.0) / 116.0)
    lab = torch.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], dim=-1
    )
    return lab.movedim(-1, channel_dim)


def delta_e76(lab_a: Tensor, lab_b: Tensor, channel_dim: int = -3) -> Tensor:
    """Euclidean distance in L*a*b* (CIE76); broadcasts, reduces ``channel_dim``."""
    return torch.linalg.vector_norm(lab_a - lab_b, dim=channel_dim)


def colour_closeness(rgb: Tensor, colour: tuple[float, float, float], tolerance: float) -> Tensor:
    """How close each pixel is to ``colour``: 1 at delta E 0 falling linearly to 0 at ``tolerance``.

    rgb ``[..., 3, H, W]`` sRGB in [0, 1] -> ``[..., H, W]`` in [0, 1]. A soft count of a colour's pixels, so
    an anti-aliased edge or a slight tint counts partly instead of flipping in or out.
    """
    if not tolerance > 0:
        raise ValueError(f"colour tolerance must be a positive delta E, got {tolerance}")
    target = srgb_to_lab(torch.tensor(colour, dtype=torch.float32).view(3, 1, 1))
    return (1.0 - delta_e76(srgb_to_lab(rgb), target) / tolerance).clamp(min=0.0)
