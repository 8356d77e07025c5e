"""The refiner's input at the target size: a low-resolution frame source scaled up bicubically, frame by frame.

:class:`UpscaledFrames` has the frame-source interface the dubbing path reads (``frame_at(time_s)``, ``fps``,
``frame_count``, ``width``, ``height``, ``close``), so :func:`talkgen_core.pipeline.generate` takes it as its
``video=`` and never holds more than the frames of one chunk window.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from talkgen_core.sampling.jobdir import hash_inputs
from talkgen_core.sampling.sizes import SIZE_MULTIPLE


def refined_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(height, width)`` times ``scale``, each rounded to a multiple of 16 (the VAE stride times the DiT patch)."""
    if not scale > 0:
        raise ValueError(f"scale must be greater than 0, got {scale}")
    return tuple(max(SIZE_MULTIPLE, round(side * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)  # type: ignore[return-value]
                 for side in (height, width))


def upscale_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[h, w, 3]`` uint8 -> ``[height, width, 3]`` uint8, bicubic (aspect stretched by the rounding only)."""
    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


class UpscaledFrames:
    """A frame source (a :class:`~talkgen_core.video.reader.VideoReader` or a
    :class:`~talkgen_core.video.frames.FrameSequence`) seen at ``(height, width)``; :meth:`close` closes it."""

    def __init__(self, source: Any, height: int, width: int) -> None:
        self.source = source
        self.height, self.width = int(height), int(width)
        self.fps = float(source.fps)
        self.frame_count = int(source.frame_count)

    def frame_at(self, time_s: float) -> np.ndarray:
        """The source frame shown at ``time_s``, upscaled: ``[height, width, 3]`` uint8."""
        return upscale_frame(self.source.frame_at(time_s), self.height, self.width)

    def hash_into(self, digest: "hashlib._Hash") -> None:
        """Job keys: the source by content (a file's bytes, or the frames in memory) and the target size."""
        content = getattr(self.source, "frames", None)
        if content is None:
            content = self.source.path
        digest.update(hash_inputs([content, [self.height, self.width]]).encode())

    def close(self) -> None:
        self.source.close()
