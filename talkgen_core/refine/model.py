"""``RefinerDiT``: the embedded refiner, a WanDiT with InfinityHuman's three conditions around it.

* Degraded low-resolution latents (:func:`.degrade.degrade`) ride in the DiT's I2V condition channels, after the
  first-frame mask: ``cond = [mask (4) | z_deg (z)]``, so the base DiT's layout is unchanged.
* Pose: landmark heatmaps at pixel size ``[B, K, F, H, W]`` go through :class:`PoseEncoder` to ``[B, z, T, h, w]``
  and are added to the noisy high-resolution latent (``z' = z + Proj(P)``). The encoder's last layer starts at
  zero, so an untrained encoder leaves the DiT as it was.
* Prefix anchor: latent 0 is the reference's clean latent; it is written into the input at every call, its
  velocity is zero (so any linear solver keeps it, and a loss weighted by :func:`loss_weights` ignores it), and
  the DiT's attention reads the identity from it.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from talkgen_core.models.dit import WanDiT
from talkgen_core.sampling.solvers import get_solver
from talkgen_core.sampling.streaming import first_frame_mask

PREFIX_LATENTS = 1


def latent_groups(maps: torch.Tensor, stride: int = 4) -> torch.Tensor:
    """Pixel-frame maps ``[B, K, F, H, W]`` (``F = stride (T - 1) + 1``) -> one map per latent frame
    ``[B, K, T, H, W]``, as the causal VAE groups frames: frame 0 alone, then the mean of each ``stride`` frames."""
    frames = maps.shape[2]
    if (frames - 1) % stride:
        raise ValueError(f"pose maps cover {frames} frames; the VAE needs {stride} n + 1")
    rest = maps[:, :, 1:].unflatten(2, ((frames - 1) // stride, stride)).mean(dim=3)
    return torch.cat([maps[:, :, :1], rest], dim=2)


class PoseEncoder(nn.Module):
    """Heatmaps at pixel size -> latent channels at latent size: stride-2 convolutions per latent frame."""

    def __init__(self, landmarks: int, latent_channels: int, spatial_stride: int = 8, hidden: int = 32,
                 temporal_stride: int = 4) -> None:
        super().__init__()
        downs = int(round(math.log2(spatial_stride)))
        if 2**downs != spatial_stride:
            raise ValueError(f"spatial_stride must be a power of 2, got {spatial_stride}")
        layers: list[nn.Module] = []
        channels = landmarks
        for _ in range(downs):
            layers += [nn.Conv2d(channels, hidden, 3, stride=2, padding=1), nn.SiLU()]
            channels = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(channels, latent_channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.temporal_stride = temporal_stride

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """``[B, K, F, H, W]`` -> ``[B, z, T, H / s, W / s]``."""
        grouped = latent_groups(maps, self.temporal_stride)
        b, k, t, h, w = grouped.shape
        x = self.out(self.body(grouped.transpose(1, 2).reshape(b * t, k, h, w)))
        return x.unflatten(0, (b, t)).transpose(1, 2)


class RefinerDiT(nn.Module):
    """A WanDiT refining a high-resolution latent video from degraded LR latents, pose and a prefix anchor."""

    def __init__(self, dit: WanDiT, landmarks: int, spatial_stride: int = 8, temporal_stride: int = 4) -> None:
        super().__init__()
        self.dit = dit  # its config guarantees in_dim = z (noisy) + 4 (mask) + z (condition)
        self.pose = PoseEncoder(landmarks, dit.config.out_dim, spatial_stride, temporal_stride=temporal_stride)
        self.temporal_stride = temporal_stride

    def condition(self, degraded: torch.Tensor) -> torch.Tensor:
        """``[mask | degraded LR latents]``: ``[B, 4 + z, T, h, w]``, latent 0 marked as known."""
        b, _, t, h, w = degraded.shape
        mask = first_frame_mask(self.temporal_stride * (t - 1) + 1, h, w, self.temporal_stride)
        return torch.cat([mask.to(degraded).expand(b, -1, -1, -1, -1), degraded], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, degraded: torch.Tensor,
                reference_latent: torch.Tensor, pose_maps: Optional[torch.Tensor] = None,
                **dit_inputs: Any) -> torch.Tensor:
        """Velocity ``[B, z, T, h, w]`` (zero on the prefix).

        x: noisy HR latents ``[B, z, T, h, w]``; t: ``[B]`` in [0, 1000]; context: text states; degraded: the
        degraded LR latents at HR latent size ``[B, z, T, h, w]``; reference_latent: ``[B, z, 1, h, w]``;
        pose_maps: ``[B, K, 4 (T - 1) + 1, H, W]`` at pixel size or None (pose dropped); ``dit_inputs``: the
        DiT's audio / clip keywords.
        """
        if degraded.shape != x.shape:
            raise ValueError(f"degraded LR latents {tuple(degraded.shape)} must match the latents {tuple(x.shape)}")
        x = x.clone()
        x[:, :, :PREFIX_LATENTS] = reference_latent.to(x)
        hidden = x
        if pose_maps is not None:
            pose = self.pose(pose_maps.to(x))
            if pose.shape != x.shape:
                raise ValueError(f"pose maps give {tuple(pose.shape)} latents for {tuple(x.shape)}; give them at "
                                 "the pixel size of the latents (VAE stride) and 4 (T - 1) + 1 frames")
            hidden = x + F.pad(pose[:, :, PREFIX_LATENTS:], (0, 0, 0, 0, PREFIX_LATENTS, 0))  # prefix stays clean
        v = self.dit(hidden, t, context, self.condition(degraded.to(x)), **dit_inputs)
        v[:, :, :PREFIX_LATENTS] = 0
        return v


def loss_weights(latent_frames: int) -> torch.Tensor:
    """Per-latent loss weights ``[T]``: 0 on the noise-free prefix, 1 elsewhere (InfinityHuman's ``w_i``)."""
    weights = torch.ones(latent_frames)
    weights[:PREFIX_LATENTS] = 0
    return weights


@torch.no_grad()
def refine_latents(refiner: RefinerDiT, noise: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                   degraded: torch.Tensor, reference_latent: torch.Tensor, pose_maps: Optional[torch.Tensor] = None,
                   solver: str = "euler", generator: Optional[torch.Generator] = None,
                   **dit_inputs: Any) -> torch.Tensor:
    """Sample HR latents ``[B, z, T, h, w]`` from ``noise`` over ``timesteps`` (a grid in [0, 1000] ending at 0);
    latent 0 of the result is exactly ``reference_latent``."""
    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        times = torch.full((x.shape[0],), float(t), device=x.device)
        return refiner(x, times, context, degraded, reference_latent, pose_maps, **dit_inputs)

    x = noise.clone()
    x[:, :, :PREFIX_LATENTS] = reference_latent.to(x)
    return get_solver(solver)(velocity, x, timesteps, generator=generator)
