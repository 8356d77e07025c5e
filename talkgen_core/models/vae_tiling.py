"""Spatial tiling with blended seams, for encoding or decoding frames too large to process at once.

Tiles are laid out on the latent grid. Each tile is processed on its own (with its own causal cache when
streaming) and the outputs are averaged with weights that ramp linearly from the tile's inner edges, so seams
fade instead of showing. Pixels farther from every inner tile edge than the network's receptive field come
out exactly as without tiling, except for the frame-global attention in the VAE's middle block, which
sees only its own tile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Tiling:
    """Tile size and overlap, in pixels (rounded down to whole latent cells)."""

    tile: int = 256
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.overlap < 0 or self.overlap >= self.tile:
            raise ValueError(f"need tile > overlap >= 0, got tile={self.tile}, overlap={self.overlap}")


@dataclass(frozen=True)
class Tile:
    """One tile as latent-grid ranges [top, bottom) x [left, right)."""

    top: int
    bottom: int
    left: int
    right: int


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile`` cells overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def tile_grid(latent_height: int, latent_width: int, tiling: Tiling, spatial_stride: int) -> list[Tile]:
    tile = max(1, tiling.tile // spatial_stride)
    overlap = min(tiling.overlap // spatial_stride, tile - 1)
    return [
        Tile(top, min(top + tile, latent_height), left, min(left + tile, latent_width))
        for top in tile_starts(latent_height, tile, overlap)
        for left in tile_starts(latent_width, tile, overlap)
    ]


def _ramp(size: int, start: int, end: int, total: int, ramp: int, device: torch.device) -> Tensor:
    """Weights along one axis for a tile covering [start, end) of [0, total): 1 inside, rising from inner edges."""
    position = torch.arange(size, device=device, dtype=torch.float32)
    weight = torch.ones(size, device=device)
    if ramp > 0:
        if start > 0:
            weight = torch.minimum(weight, (position + 0.5) / ramp)
        if end < total:
            weight = torch.minimum(weight, (size - position - 0.5) / ramp)
    return weight


def blend_tiles(
    x: Tensor,
    tiles: list[Tile],
    process: Callable[[int, Tensor], Tensor],
    in_scale: int,
    out_scale: int,
    overlap_out: int,
) -> Tensor:
    """Run ``process(tile_index, x_tile)`` on every tile of ``x`` and blend the results.

    ``x`` is [B, C, T, H, W] where H, W are the latent grid times ``in_scale``; outputs are the latent grid times
    ``out_scale`` (decode: in 1, out 8; encode: in 8, out 1). ``overlap_out`` is the ramp length in output units.
    """
    total_h = max(t.bottom for t in tiles)
    total_w = max(t.right for t in tiles)
    out: Tensor | None = None
    weight_sum: Tensor | None = None
    for index, t in enumerate(tiles):
        piece = process(
            index, x[:, :, :, t.top * in_scale : t.bottom * in_scale, t.left * in_scale : t.right * in_scale]
        )
        if out is None or weight_sum is None:
            b, c, frames = piece.shape[:3]
            out = piece.new_zeros(b, c, frames, total_h * out_scale, total_w * out_scale, dtype=torch.float32)
            weight_sum = torch.zeros(total_h * out_scale, total_w * out_scale, device=piece.device)
        h, w = piece.shape[-2:]
        wy = _ramp(h, t.top, t.bottom, total_h, overlap_out, piece.device)
        wx = _ramp(w, t.left, t.right, total_w, overlap_out, piece.device)
        weight = wy[:, None] * wx[None, :]
        region = (slice(t.top * out_scale, t.bottom * out_scale), slice(t.left * out_scale, t.right * out_scale))
        out[..., region[0], region[1]] += piece.float() * weight
        weight_sum[region] += weight
    assert out is not None and weight_sum is not None
    return out / weight_sum
