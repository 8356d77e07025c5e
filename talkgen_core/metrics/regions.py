"""Pixel boxes around known parts of a frame (an eye pair, a mouth), from ground-truth coverage masks."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Box:
    """Rows ``top:bottom`` and columns ``left:right`` (half-open, in pixels) of an ``height x width`` frame."""

    top: int
    bottom: int
    left: int
    right: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if not (0 <= self.top < self.bottom <= self.height and 0 <= self.left < self.right <= self.width):
            raise ValueError(f"box rows {self.top}:{self.bottom}, columns {self.left}:{self.right} do not lie "
                             f"inside a {self.width} x {self.height} frame")

    def grown(self, pixels: int) -> Box:
        """The box widened by ``pixels`` on every side, clipped to the frame."""
        return Box(max(self.top - pixels, 0), min(self.bottom + pixels, self.height), max(self.left - pixels, 0),
                   min(self.right + pixels, self.width), self.height, self.width)

    def mask(self) -> Tensor:
        """[H, W] bool, True inside the box."""
        inside = torch.zeros(self.height, self.width, dtype=torch.bool)
        inside[self.top : self.bottom, self.left : self.right] = True
        return inside


def mask_box(mask: Tensor, threshold: float = 0.5, what: str = "mask") -> Box:
    """Bounding box of the pixels of ``mask`` ([H, W] coverage) above ``threshold``."""
    if mask.dim() != 2:
        raise ValueError(f"{what} must be one [H, W] coverage map, got shape {tuple(mask.shape)}")
    rows, cols = torch.nonzero(mask > threshold, as_tuple=True)
    if rows.numel() == 0:
        raise ValueError(f"{what} has no pixel above {threshold}: nothing to put a box around")
    return Box(int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1, *mask.shape)


def erode(mask: Tensor, radius: int) -> Tensor:
    """Binary erosion of [T, H, W] bool masks with a square of side 2 * radius + 1 (outside the frame counts as
    inside the mask, so a mask touching the border keeps its border pixels)."""
    if radius <= 0:
        return mask
    inv = (~mask).float().unsqueeze(1)
    grown = F.max_pool2d(inv, kernel_size=2 * radius + 1, stride=1, padding=radius)
    return grown.squeeze(1) < 0.5
