"""The refiner's low-resolution condition: LR latents upsampled, low-pass filtered and noised (InfinityHuman).

``z_deg = LPF(up(z_lr)) + alpha * eps``: training degrades the LR latents this way so the refiner learns to
restore detail and correct structure instead of copying its input; inference degrades them the same way.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

DEFAULT_BLUR_SIGMA = 1.0  # Gaussian low-pass, in high-resolution latent pixels


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of radius ``ceil(3 sigma)``: ``[2 r + 1]``."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def low_pass(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over the last two axes with reflected borders: ``[N, C, H, W]`` -> same."""
    kernel = gaussian_kernel(sigma).to(frames)
    radius, channels = kernel.numel() // 2, frames.shape[1]
    rows = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    x = F.conv2d(F.pad(frames, (radius, radius, 0, 0), mode="reflect"), rows, groups=channels)
    cols = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), cols, groups=channels)


def degrade(lr_latents: torch.Tensor, scale: int, alpha: float, generator: Optional[torch.Generator] = None,
            sigma: float = DEFAULT_BLUR_SIGMA) -> torch.Tensor:
    """``[B, z, T, h, w]`` -> ``[B, z, T, scale h, scale w]``: bilinear upsampling, Gaussian low-pass of ``sigma``
    (0 = none), plus ``alpha`` times Gaussian noise drawn from ``generator`` (on the CPU, so a seed gives the same
    condition on every device)."""
    if lr_latents.ndim != 5:
        raise ValueError(f"lr_latents must be [B, z, T, h, w], got shape {tuple(lr_latents.shape)}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a whole number >= 1, got {scale!r}")
    if not alpha >= 0:
        raise ValueError(f"alpha (the noise strength) must be >= 0, got {alpha}")
    b, z, t, h, w = lr_latents.shape
    frames = lr_latents.float().permute(0, 2, 1, 3, 4).reshape(b * t, z, h, w)
    up = F.interpolate(frames, scale_factor=scale, mode="bilinear", align_corners=False) if scale > 1 else frames
    if sigma > 0:
        up = low_pass(up, sigma)
    out = up.reshape(b, t, z, scale * h, scale * w).permute(0, 2, 1, 3, 4)
    if alpha > 0:
        noise = torch.randn(out.shape, generator=generator, dtype=torch.float32)
        out = out + alpha * noise.to(out.device)
    return out.contiguous()
