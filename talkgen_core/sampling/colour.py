"""Colour correction between chunks: match each frame's CIE-Lab mean and std to the reference image.

This is the official anti-drift option (``color_correction_strength``): per frame, shift and scale L, a and b
to the reference's statistics, convert back, clip, and blend ``(1 - strength) original + strength corrected``.
The sRGB <-> Lab conversion (D65 white, sRGB transfer curve) is implemented here in torch so it runs on the
frames' device without extra dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# linear sRGB -> XYZ (D65), and the D65 white point
_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    dtype=torch.float64,
)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPSILON = (6.0 / 29.0) ** 3
_KAPPA_SLOPE = (29.0 / 6.0) ** 2 / 3.0


def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    c = c.clamp_min(0.0)
    return torch.where(c > 0.0031308, 1.055 * c ** (1.0 / 2.4) - 0.055, 12.92 * c)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> CIE-Lab (L in [0, 100]); channel axis 0 of ``[3, ...]``."""
    matrix = _RGB_TO_XYZ.to(rgb.device, rgb.dtype)
    white = _WHITE_D65.to(rgb.device, rgb.dtype)
    linear = _srgb_to_linear(rgb)
    xyz = torch.einsum("ij,j...->i...", matrix, linear) / white.view(3, *([1] * (rgb.ndim - 1)))
    f = torch.where(xyz > _EPSILON, xyz.clamp_min(_EPSILON) ** (1.0 / 3.0), xyz * _KAPPA_SLOPE + 4.0 / 29.0)
    return torch.stack([116.0 * f[1] - 16.0, 500.0 * (f[0] - f[1]), 200.0 * (f[1] - f[2])])


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE-Lab -> sRGB (not clipped); channel axis 0 of ``[3, ...]``."""
    matrix_inv = _XYZ_TO_RGB.to(lab.device, lab.dtype)
    white = _WHITE_D65.to(lab.device, lab.dtype)
    fy = (lab[0] + 16.0) / 116.0
    f = torch.stack([fy + lab[1] / 500.0, fy, fy - lab[2] / 200.0])
    delta = 6.0 / 29.0
    xyz = torch.where(f > delta, f**3, (f - 4.0 / 29.0) / _KAPPA_SLOPE)
    xyz = xyz * white.view(3, *([1] * (lab.ndim - 1)))
    return _linear_to_srgb(torch.einsum("ij,j...->i...", matrix_inv, xyz))


def lab_statistics(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel Lab mean and std of one image ``[3, H, W]`` in [-1, 1]; each ``[3]``."""
    lab = rgb_to_lab(((image.double() + 1.0) / 2.0).clamp(0.0, 1.0)).flatten(1)
    return lab.mean(dim=1), lab.std(dim=1, unbiased=False)


@dataclass(frozen=True)
class ColourTarget:
    """A reference image's Lab mean and std (``[3]`` float64 each): computed once, reused for every chunk."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, image: torch.Tensor) -> ColourTarget:
        """Statistics of ``image`` ``[3, H, W]`` in [-1, 1]."""
        return cls(*lab_statistics(image))


def match_colours(
    frames: torch.Tensor, reference: torch.Tensor | ColourTarget, strength: float = 1.0
) -> torch.Tensor:
    """Pull each frame's Lab mean/std towards the reference image's.

    frames: ``[B, 3, T, H, W]`` in [-1, 1]; reference: ``[3, H', W']`` in [-1, 1] (any size), or its
    ``ColourTarget`` (the same result without recomputing the reference's statistics at every call).
    strength: 0 returns the frames unchanged, 1 fully corrected. Returns the frames' shape and dtype.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour correction strength must be in [0, 1], got {strength}")
    if frames.ndim != 5 or frames.shape[1] != 3:
        raise ValueError(f"frames must be [B, 3, T, H, W], got {tuple(frames.shape)}")
    if strength == 0.0:
        return frames
    target = reference if isinstance(reference, ColourTarget) else ColourTarget.of(reference)
    ref_mean, ref_std = (v.to(frames.device).view(3, 1, 1, 1) for v in (target.mean, target.std))
    out = torch.empty_like(frames)
    for b in range(frames.shape[0]):
        video = ((frames[b].double() + 1.0) / 2.0).clamp(0.0, 1.0)  # [3, T, H, W]
        lab = rgb_to_lab(video)
        mean = lab.mean(dim=(2, 3), keepdim=True)  # per frame and channel: [3, T, 1, 1]
        std = lab.std(dim=(2, 3), keepdim=True, unbiased=False).clamp_min(1e-6)
        corrected = lab_to_rgb((lab - mean) / std * ref_std + ref_mean).clamp(0.0, 1.0)
        blended = (1.0 - strength) * video + strength * corrected
        out[b] = (blended * 2.0 - 1.0).to(frames.dtype)
    return out
