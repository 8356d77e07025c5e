"""Frame layouts at the library's edge, and a video held as frames in memory.

The core works on ``[T, 3, H, W]`` float frames in [-1, 1]. Image batches from hosts and files come as
``[T, H, W, 3]`` floats in [0, 1] (ComfyUI's IMAGE, PIL/NumPy order); these functions convert between them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# a frame starting within this many seconds after t still counts as "at t" (as the file reader does)
_TIME_TOLERANCE = 1e-4


def images_to_frames(images: torch.Tensor) -> torch.Tensor:
    """``[T, H, W, C]`` (C = 3, or 4 with alpha dropped) in [0, 1] -> ``[T, 3, H, W]`` in [-1, 1]."""
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise ValueError(f"images must be [T, H, W, 3] in [0, 1], got shape {tuple(images.shape)}")
    if 0 in images.shape[:3]:
        raise ValueError(f"the image batch is empty (shape {tuple(images.shape)}); connect at least one image")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    return images[..., :3].permute(0, 3, 1, 2).float().clamp(0.0, 1.0) * 2.0 - 1.0


def frames_to_images(frames: torch.Tensor) -> torch.Tensor:
    """``[T, 3, H, W]`` in [-1, 1] -> ``[T, H, W, 3]`` in [0, 1]."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be [T, 3, H, W], got shape {tuple(frames.shape)}")
    return ((frames.float().clamp(-1.0, 1.0) + 1.0) / 2.0).permute(0, 2, 3, 1).contiguous()


class FrameSequence:
    """A video already in memory (uint8, ``[T, H, W, 3]``) with the file reader's time-based access."""

    def __init__(self, frames: np.ndarray, fps: float) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
            raise ValueError(f"frames must be a non-empty [T, H, W, 3] uint8 array, got {frames.shape} {frames.dtype}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.frames = frames
        self.fps = float(fps)
        self.frame_count, self.height, self.width = frames.shape[0], frames.shape[1], frames.shape[2]
        self.duration = self.frame_count / self.fps

    @classmethod
    def from_images(cls, images: torch.Tensor, fps: float) -> FrameSequence:
        """From ``[T, H, W, 3]`` floats in [0, 1]."""
        if images.ndim != 4 or images.shape[-1] not in (3, 4):
            raise ValueError(f"images must be [T, H, W, 3] in [0, 1], got shape {tuple(images.shape)}")
        pixels = (images[..., :3].float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        return cls(pixels.cpu().numpy(), fps)

    def frame_index_at(self, time_s: float) -> int:
        """The last frame whose start time is <= ``time_s``; the last frame holds past the end."""
        index = math.floor(max(time_s, 0.0) * self.fps + _TIME_TOLERANCE * self.fps)
        return min(index, self.frame_count - 1)

    def frame_at(self, time_s: float) -> np.ndarray:
        return self.frames[self.frame_index_at(time_s)]

    def close(self) -> None:
        """Nothing to release; present so it can stand in for a file reader."""
