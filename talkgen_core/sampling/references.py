"""Where each chunk's reference frame (and, for dubbing, its source frames) come from.

Image-to-video:
* :class:`StillReference`: one image for every chunk.
* :class:`PerChunkReferences`: a list of images, the i-th for chunk i (the last one repeats).
* :class:`KeyframeReferences`: images placed at times; a chunk uses the keyframe at or before its anchor time
  (``policy="previous"``) or the one nearest to it (``"nearest"``).

Sparse-frame video dubbing (video-to-video), :class:`VideoReferences`: the source video supplies the reference
of each chunk at the chunk's anchor TIME, so a 30 fps source is resampled correctly to any output rate (the
official code indexes source frames by output frame number, which assumes a 25 fps source). The anchor is
the chunk's first frame (official), its first new frame, or its middle. With SDEdit enabled the whole window
of source frames is also returned, to initialise the chunk from the source latents and keep the camera path.
Past the end of the source the last frame holds.

All frames are returned at the output size in the core layout: ``[3, H, W]`` float in [-1, 1].
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Optional, Protocol, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .chunks import ChunkSpec

ImageInput = Union[str, Path, np.ndarray, torch.Tensor, "PIL.Image.Image"]  # noqa: F821
Anchor = Literal["chunk_start", "first_new_frame", "chunk_middle"]
ANCHORS: tuple[str, ...] = ("chunk_start", "first_new_frame", "chunk_middle")


def to_pixels(image: ImageInput) -> torch.Tensor:
    """An image file, PIL image, ``[H, W, 3]`` uint8 array or ``[3, H, W]`` tensor in [-1, 1] -> ``[3, H, W]``.

    Files and PIL images of any pixel mode (16-bit grey, float, alpha) are read as a viewer shows them
    (:func:`talkgen_core.video.images.image_to_rgb`).
    """
    from talkgen_core.video.images import image_to_rgb, read_image

    if isinstance(image, (str, Path)):
        image = torch.from_numpy(read_image(image, what="reference image")).permute(2, 0, 1) * 2.0 - 1.0
    elif not isinstance(image, (np.ndarray, torch.Tensor)) and hasattr(image, "convert"):
        image = torch.from_numpy(image_to_rgb(image)).permute(2, 0, 1) * 2.0 - 1.0
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image arrays must be [H, W, 3] uint8, got {image.shape} {image.dtype}")
        image = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float() / 127.5 - 1.0
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3 or 0 in image.shape:
            raise ValueError(f"image tensors must be [3, H, W] in [-1, 1] with H, W > 0, got {tuple(image.shape)}")
        if not torch.isfinite(image).all():
            raise ValueError("the reference image holds NaN or infinite values")
        return image.float().contiguous()
    raise TypeError(f"unsupported image type {type(image).__name__}; pass a path, PIL image, array or tensor")


def resize_and_crop(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale to cover ``height x width`` (bilinear; the larger of the two ratios, rounded up) and centre-crop.

    pixels: ``[3, h, w]`` or ``[N, 3, h, w]``; returns the same rank at the new size.
    """
    single = pixels.ndim == 3
    x = pixels[None] if single else pixels
    h, w = x.shape[-2:]
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        new_h, new_w = max(height, math.ceil(h * scale)), max(width, math.ceil(w * scale))
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        x = x[..., top : top + height, left : left + width]
    x = x.clamp(-1.0, 1.0)
    return x[0] if single else x


def anchor_frame(chunk: ChunkSpec, anchor: Anchor) -> int:
    """The absolute output frame whose time selects the chunk's reference."""
    if anchor == "chunk_start":
        return chunk.start
    if anchor == "first_new_frame":
        return chunk.output_start
    if anchor == "chunk_middle":
        return chunk.start + chunk.length // 2
    raise ValueError(f"unknown reference anchor {anchor!r}; choose one of: {', '.join(ANCHORS)}")


class ReferenceProvider(Protocol):
    size: tuple[int, int]  # (height, width) of the output

    def reference_for(self, chunk: ChunkSpec, fps: float) -> torch.Tensor:
        """The chunk's reference frame. [3, H, W]"""

    def colour_reference(self) -> torch.Tensor:
        """The image colour correction pulls towards: the first reference. [3, H, W]"""

    def source_frames_for(self, chunk: ChunkSpec, fps: float) -> Optional[torch.Tensor]:
        """The source frames of the chunk's window for SDEdit, or None. [1, 3, T, H, W]"""


class StillReference:
    def __init__(self, image: ImageInput, size: tuple[int, int]) -> None:
        self.size = size
        self.image = resize_and_crop(to_pixels(image), *size)

    def reference_for(self, chunk: ChunkSpec, fps: float) -> torch.Tensor:
        return self.image

    def colour_reference(self) -> torch.Tensor:
        return self.image

    def source_frames_for(self, chunk: ChunkSpec, fps: float) -> Optional[torch.Tensor]:
        return None


class PerChunkReferences:
    """Image i for chunk i; chunks beyond the list keep the last image."""

    def __init__(self, images: Sequence[ImageInput], size: tuple[int, int]) -> None:
        if not images:
            raise ValueError("PerChunkReferences needs at least one image")
        self.size = size
        self.images = [resize_and_crop(to_pixels(im), *size) for im in images]

    def reference_for(self, chunk: ChunkSpec, fps: float) -> torch.Tensor:
        return self.images[min(chunk.index, len(self.images) - 1)]

    def colour_reference(self) -> torch.Tensor:
        return self.images[0]

    def source_frames_for(self, chunk: ChunkSpec, fps: float) -> Optional[torch.Tensor]:
        return None


class KeyframeReferences:
    """Images at given times (seconds). The first keyframe also covers times before it."""

    def __init__(self, images: Sequence[ImageInput], times_s: Sequence[float], size: tuple[int, int],
                 policy: Literal["previous", "nearest"] = "previous", anchor: Anchor = "chunk_start") -> None:
        if not images or len(images) != len(times_s):
            raise ValueError(f"keyframes need one time per image; got {len(images)} images, {len(times_s)} times")
        if policy not in ("previous", "nearest"):
            raise ValueError(f"keyframe policy must be 'previous' or 'nearest', got {policy!r}")
        order = sorted(range(len(times_s)), key=lambda i: times_s[i])
        self.size = size
        self.times = [float(times_s[i]) for i in order]
        self.images = [resize_and_crop(to_pixels(images[i]), *size) for i in order]
        self.policy, self.anchor = policy, anchor

    def index_at(self, time_s: float) -> int:
        if self.policy == "nearest":
            return min(range(len(self.times)), key=lambda i: (abs(self.times[i] - time_s), i))
        before = [i for i, t in enumerate(self.times) if t <= time_s + 1e-9]
        return before[-1] if before else 0

    def reference_for(self, chunk: ChunkSpec, fps: float) -> torch.Tensor:
        return self.images[self.index_at(anchor_frame(chunk, self.anchor) / fps)]

    def colour_reference(self) -> torch.Tensor:
        return self.images[0]

    def source_frames_for(self, chunk: ChunkSpec, fps: float) -> Optional[torch.Tensor]:
        return None


class VideoReferences:
    """Sparse-frame dubbing: reference frames (and optionally SDEdit source windows) from a source video.

    Args:
        video: a path, or an open source with ``frame_at(time_s) -> [H, W, 3] uint8`` and ``close()`` (a
            :class:`talkgen_core.video.reader.VideoReader`, or an in-memory ``FrameSequence``).
        size: output ``(height, width)``; source frames are scaled and centre-cropped to it.
        anchor: which frame time of a chunk picks its reference (see :func:`anchor_frame`).
        with_source_frames: also provide each chunk's window of source frames (for SDEdit).
        close_source: whether :meth:`close` closes the source; default: only a source opened here.
        anchor_image: a reference image that every chunk is conditioned on and colours are pulled towards, in
            place of the source's own frames (the refiner's identity anchor); the source then supplies only
            the SDEdit windows. Chunk 0's pinned first latent is this image's, so the output starts on it.
    """

    def __init__(self, video, size: tuple[int, int], anchor: Anchor = "chunk_start",
                 with_source_frames: bool = False, close_source: Optional[bool] = None,
                 anchor_image: Optional[ImageInput] = None) -> None:
        from talkgen_core.video.reader import VideoReader

        opened_here = not hasattr(video, "frame_at")
        self.reader = VideoReader(video) if opened_here else video
        self._close_source = opened_here if close_source is None else close_source
        self.size = size
        if anchor not in ANCHORS:
            raise ValueError(f"unknown reference anchor {anchor!r}; choose one of: {', '.join(ANCHORS)}")
        self.anchor = anchor
        self.with_source_frames = with_source_frames
        self._anchor = None if anchor_image is None else resize_and_crop(to_pixels(anchor_image), *size)
        self._first = self._anchor if self._anchor is not None else self._pixels_at(0.0)

    def _pixels_at(self, time_s: float) -> torch.Tensor:
        return resize_and_crop(to_pixels(self.reader.frame_at(time_s)), *self.size)

    def reference_time(self, chunk: ChunkSpec, fps: float) -> float:
        return anchor_frame(chunk, self.anchor) / fps

    def reference_for(self, chunk: ChunkSpec, fps: float) -> torch.Tensor:
        if self._anchor is not None:
            return self._anchor
        return self._pixels_at(self.reference_time(chunk, fps))

    def colour_reference(self) -> torch.Tensor:
        return self._first

    def source_frames_for(self, chunk: ChunkSpec, fps: float) -> Optional[torch.Tensor]:
        if not self.with_source_frames:
            return None
        frames = [self._pixels_at((chunk.start + i) / fps) for i in range(chunk.length)]
        return torch.stack(frames, dim=1)[None]  # [1, 3, T, H, W]

    def close(self) -> None:
        """Release the source if this object owns it (it opened it, or ``close_source=True``)."""
        if self._close_source:
            self.reader.close()
