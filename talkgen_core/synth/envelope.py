"""The audio envelope on the video clock: RMS of the samples that belong to each video frame.

Shared by the renderer (the mouth follows it) and the lip-sync metric (the mouth is compared with it), so
both sides agree on which samples make up frame ``i``: ``[i * S/fps, (i + 1) * S/fps)`` at sample rate S.
"""

from __future__ import annotations

import torch
from torch import Tensor


def frame_rms(audio: Tensor, sample_rate: int, fps: float, num_frames: int | None = None) -> Tensor:
    """audio [S] -> RMS per video frame [T]; T defaults to the number of whole frames the audio covers.

    Frames past the end of the audio get the RMS of whatever samples remain (zero if none).
    """
    if audio.dim() != 1:
        raise ValueError(f"audio must be mono [S], got shape {tuple(audio.shape)}")
    per_frame = sample_rate / fps
    if num_frames is None:
        num_frames = int(audio.shape[0] // per_frame)
    bounds = torch.round(torch.arange(num_frames + 1, dtype=torch.float64) * per_frame).long()
    bounds = bounds.clamp(max=audio.shape[0])
    energy = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(audio.double() ** 2, 0)])
    counts = (bounds[1:] - bounds[:-1]).clamp(min=1)
    return ((energy[bounds[1:]] - energy[bounds[:-1]]) / counts).clamp(min=0).sqrt().float()
