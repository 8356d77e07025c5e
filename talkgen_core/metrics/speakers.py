"""Several speakers in one frame: does each mouth follow its own voice, and not the others'?

Mouth ``i``'s opening is measured inside its own region (``measure_mouth_opening``); voice ``j``'s envelope is
the RMS of that speaker's own track per video frame. ``r[i, j]`` is their best correlation within
``window`` frames of lag 0: the diagonal should be high, the rest near zero (in turn-taking speech a mouth
that moves only for its own voice is even negatively correlated with the other's).
"""

from __future__ import annotations

import torch
from torch import Tensor

from talkgen_core.metrics.lipsync import lagged_correlations, measure_mouth_opening
from talkgen_core.synth.envelope import frame_rms


def speaker_sync(
    frames: Tensor,  # [T, 3, H, W] uint8 or float in [-1, 1]
    voices: Tensor,  # [P, S] each speaker's own track (mono, same clock)
    regions: Tensor,  # [P, H, W] bool: where each speaker's mouth is
    sample_rate: int,
    fps: float,
    window: int = 1,
) -> Tensor:
    """[P, P] float: ``r[i, j]`` = correlation of mouth ``i`` with voice ``j`` (best lag within ``window``)."""
    if voices.dim() != 2 or regions.dim() != 3 or voices.shape[0] != regions.shape[0]:
        raise ValueError(f"give one voice [P, S] per mouth region [P, H, W]; got voices {tuple(voices.shape)} "
                         f"and regions {tuple(regions.shape)}")
    openings = [measure_mouth_opening(frames, region) for region in regions]
    envelopes = [frame_rms(voice, sample_rate, fps, frames.shape[0]) for voice in voices]
    out = torch.zeros(len(openings), len(envelopes))
    for i, opening in enumerate(openings):
        for j, envelope in enumerate(envelopes):
            out[i, j] = lagged_correlations(opening, envelope, window)[1].max()
    return out
