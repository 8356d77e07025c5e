"""Fine detail in a region: how much of a reference's small-scale luminance structure a frame keeps.

Detail is the RMS of the luminance high-pass (luma minus its 3 x 3 box blur, edges replicated) over the
region's pixels ([H, W] bool: a box's ``mask()``, or a feature's own pixels). Eyes, brows and lashes are a few
pixels wide at the demo size, so a decoder that blurs them away leaves their detail near zero while its mean
colour can stay right. A strong edge next to the feature (a hair fringe over the brows) that the decoder
keeps would hide that loss in a box, so the eye measure counts only pixels whose 3 x 3 stencil lies inside the
eye mask (``FeatureBoxes.eye_pixels``). The ratio to the reference's detail is 1 for the reference itself,
below 1 for a blurred copy; noise would raise it, so read it beside a sharp picture, not alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from talkgen_core.metrics.frames import to_unit_rgb

# Rec. 601 luma weights on the sRGB values (the usual Y' of video).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma(frames: Tensor) -> Tensor:
    """frames ``[..., 3, H, W]`` (uint8 or float in [-1, 1]) -> luma ``[..., H, W]`` in [0, 1]."""
    rgb = to_unit_rgb(frames)
    weights = torch.tensor(LUMA_WEIGHTS).view(3, 1, 1)
    return (rgb * weights).sum(dim=-3)


def high_pass(lum: Tensor) -> Tensor:
    """Luma ``[..., H, W]`` minus its 3 x 3 box blur (edges replicated), same shape."""
    flat = lum.reshape(-1, 1, *lum.shape[-2:])
    blurred = F.avg_pool2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), kernel_size=3, stride=1)
    return (flat - blurred).reshape(lum.shape)


def detail_rms(frames: Tensor, region: Tensor) -> Tensor:
    """frames ``[T, 3, H, W]`` -> RMS of the luma high-pass over ``region`` ([H, W] bool) per frame ``[T]``."""
    if region.shape != frames.shape[-2:] or region.dtype != torch.bool or not bool(region.any()):
        raise ValueError(f"the detail region must be a non-empty [H, W] = {tuple(frames.shape[-2:])} bool mask, "
                         f"got {tuple(region.shape)} {region.dtype}")
    detail = high_pass(luma(frames))[..., region]
    return detail.pow(2).mean(dim=-1).sqrt()


def detail_ratio(frames: Tensor, reference: Tensor, region: Tensor) -> Tensor:
    """Detail of each frame ``[T, 3, H, W]`` over that of ``reference`` ``[3, H, W]`` in ``region``: ``[T]``."""
    own = float(detail_rms(reference[None], region)[0])
    if own <= 0.0:
        raise ValueError("the reference has no detail in the region (a flat patch): nothing to compare with")
    return detail_rms(frames, region) / own
