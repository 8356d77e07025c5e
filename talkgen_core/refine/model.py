"""``RefinerDiT``: the embedded refiner, a WanDiT with InfinityHuman's three conditions around it.

A refined chunk is one sequence of ``1 + T`` latent frames: the prefix (the reference's clean latent, which the
DiT's attention reads the identity from) followed by the chunk's ``T`` latents, whose first ones are pinned to
clean context as in the base chain (chunk 0: the reference's latent; later chunks: the previous chunk's tail).
Everything the refiner is conditioned on rides in one condition tensor, so the chunk loop's guidance and
solvers call it exactly like a WanDiT (:meth:`RefinerDiT.forward`):

``cond = [mask (4) | y (z) | pose cells (K s^2)]`` over the ``1 + T`` positions, where

* ``mask`` marks the prefix (all ones there, zero elsewhere), as the base DiT's first-frame mask marks its image;
* ``y`` is the reference's latent at the prefix and the degraded low-resolution latents (:func:`.degrade.degrade`:
  upsampled, low-passed, noised) at the chunk's positions;
* the pose cells are landmark heatmaps at pixel size (:func:`.pose.pose_maps`), grouped per latent frame as the
  causal VAE groups frames and folded space-to-depth to latent size (lossless); :class:`PoseEncoder` maps them to
  latent channels that are added to the noisy latent (``z' = z + Proj(P)``). It has no biases and its last layer
  starts at zero, so the prefix (no pose) gets nothing added and an untrained encoder leaves the DiT as it was.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from talkgen_core.models.dit import WanDiT

MASK_CHANNELS = 4
PREFIX_LATENTS = 1


def latent_groups(maps: torch.Tensor, stride: int = 4) -> torch.Tensor:
    """Pixel-frame maps ``[B, K, F, H, W]`` (``F = stride (T - 1) + 1``) -> one map per latent frame
    ``[B, K, T, H, W]``, as the causal VAE groups frames: frame 0 alone, then the mean of each ``stride`` frames."""
    frames = maps.shape[2]
    if (frames - 1) % stride:
        raise ValueError(f"pose maps cover {frames} frames; the VAE needs {stride} n + 1")
    rest = maps[:, :, 1:].unflatten(2, ((frames - 1) // stride, stride)).mean(dim=3)
    return torch.cat([maps[:, :, :1], rest], dim=2)


def pose_cells(maps: torch.Tensor, spatial_stride: int = 8, temporal_stride: int = 4) -> torch.Tensor:
    """Heatmaps at pixel size ``[B, K, F, H, W]`` -> ``[B, K s^2, T, H / s, W / s]`` at latent size (space to depth
    of the per-latent-frame means)."""
    grouped = latent_groups(maps, temporal_stride)
    b, k, t, h, w = grouped.shape
    if h % spatial_stride or w % spatial_stride:
        raise ValueError(f"pose maps of {h}x{w} pixels do not divide into latent cells of {spatial_stride}")
    cells = F.pixel_unshuffle(grouped.transpose(1, 2).reshape(b * t, k, h, w), spatial_stride)
    return cells.unflatten(0, (b, t)).transpose(1, 2)


class PoseEncoder(nn.Module):
    """Pose cells ``[B, K s^2, T, h, w]`` -> latent channels ``[B, z, T, h, w]``: per latent frame a 1x1 layer, a
    3x3 layer and a zero-initialised 1x1 projection, all without biases (so zero pose maps to zero)."""

    def __init__(self, in_channels: int, latent_channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, hidden, 1, bias=False), nn.SiLU(),
                                  nn.Conv2d(hidden, hidden, 3, padding=1, bias=False), nn.SiLU())
        self.out = nn.Conv2d(hidden, latent_channels, 1, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, cells: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = cells.shape
        x = self.out(self.body(cells.transpose(1, 2).reshape(b * t, c, h, w)))
        return x.unflatten(0, (b, t)).transpose(1, 2)


class RefinerDiT(nn.Module):
    """A WanDiT refining a high-resolution latent video from degraded LR latents, pose and a prefix anchor.

    Called like the WanDiT it wraps (``x, t, context, cond, **audio keywords``) with the longer condition of the
    module docstring; ``blocks`` and ``config`` are the DiT's, so cancel checks and guidance see a DiT."""

    def __init__(self, dit: WanDiT, landmarks: int, spatial_stride: int = 8, temporal_stride: int = 4) -> None:
        super().__init__()
        self.dit = dit  # its config guarantees in_dim = z (noisy) + 4 (mask) + z (condition)
        self.landmarks = landmarks
        self.spatial_stride, self.temporal_stride = spatial_stride, temporal_stride
        self.pose = PoseEncoder(landmarks * spatial_stride**2, dit.config.out_dim)

    @property
    def config(self):
        return self.dit.config

    @property
    def blocks(self) -> nn.ModuleList:
        return self.dit.blocks

    @property
    def latent_channels(self) -> int:
        return int(self.dit.config.out_dim)

    def set_attention_backend(self, backend: str) -> None:
        self.dit.set_attention_backend(backend)

    def set_compute_dtype(self, dtype: torch.dtype) -> None:
        self.dit.set_compute_dtype(dtype)

    def condition(self, reference_latent: torch.Tensor, degraded: torch.Tensor,
                  pose_maps: Optional[torch.Tensor] = None, cells: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The refiner's condition ``[B, 4 + z + K s^2, 1 + T, h, w]`` (module docstring).

        reference_latent: ``[B, z, 1, h, w]``; degraded: ``[B, z, T, h, w]`` at the HR latent size; the pose as
        ``pose_maps`` ``[B, K, 4 (T - 1) + 1, H, W]`` at pixel size (``H = s h``) or as ready ``cells``
        (:func:`pose_cells`), or neither (no pose: zero cells)."""
        b, z, t, h, w = degraded.shape
        if reference_latent.shape != (b, z, 1, h, w):
            raise ValueError(f"the reference latent {tuple(reference_latent.shape)} must be {(b, z, 1, h, w)}")
        cells_channels = self.landmarks * self.spatial_stride**2
        if pose_maps is not None:
            cells = pose_cells(pose_maps.to(degraded), self.spatial_stride, self.temporal_stride)
        if cells is None:
            cells = degraded.new_zeros(b, cells_channels, t, h, w)
        elif cells.shape != (b, cells_channels, t, h, w):
            raise ValueError(f"pose cells {tuple(cells.shape)} do not cover the {t} latent frames of {h}x{w}: give "
                             f"{self.landmarks} maps of 4 (T - 1) + 1 frames at the pixel size")
        mask = degraded.new_zeros(b, MASK_CHANNELS, 1 + t, h, w)
        mask[:, :, :PREFIX_LATENTS] = 1.0
        y = torch.cat([reference_latent.to(degraded), degraded], dim=2)
        pose = F.pad(cells.to(degraded), (0, 0, 0, 0, PREFIX_LATENTS, 0))
        return torch.cat([mask, y, pose], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, cond: torch.Tensor,
                **dit_inputs: Any) -> torch.Tensor:
        """Velocity ``[B, z, 1 + T, h, w]`` of noisy latents ``x`` (prefix first) under :meth:`condition`'s
        ``cond``; ``dit_inputs``: the DiT's audio / clip keywords (audio with 4 null frames for the prefix)."""
        split = MASK_CHANNELS + self.latent_channels
        if cond.shape[1] != split + self.landmarks * self.spatial_stride**2:
            raise ValueError(f"the refiner's condition has {cond.shape[1]} channels; build it with condition()")
        hidden = x + self.pose(cond[:, split:].to(x)).to(x)
        return self.dit(hidden, t, context, cond[:, :split], **dit_inputs)


def prefixed_audio(audio: torch.Tensor) -> torch.Tensor:
    """Per-frame audio windows ``[B, P, F, 5, L, D]`` with ``4`` null frames in front, for the prefix latent (so every
    chunk latent keeps its own frames)."""
    null = audio.new_zeros(audio.shape[0], audio.shape[1], 4, *audio.shape[3:])
    return torch.cat([null, audio], dim=2)
