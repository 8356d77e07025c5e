"""Several speakers: one track each, placed on a common timeline, encoded separately.

Modes (the first two as in the official ``audio_type``):
* ``para``: every track starts at 0 (simultaneous speech); shorter tracks are padded with silence.
* ``add``: turn-taking; each speaker starts when the previous one ends, every track silence-padded to
  the total. With ``fps`` given, each start is moved to the next video-frame boundary, so speaker k's
  first sample is exactly the first sample of a video frame (the official code starts it at the
  previous track's last sample, which may fall inside a frame).
* ``timeline``: explicit start time per track (seconds).
A ``None`` track is a silent speaker (it takes no time in ``add``). Any number of speakers.

Each speaker gets its own embedding (``encode_speakers``); the summed ``mix`` is only the soundtrack.
If overlapping speech makes the mix peak above 1.0 it goes through the loudness module's soft limiter.
For guidance, ``null_speech_features`` gives the official "null audio": an all-zero feature tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .encode import DEFAULT_FPS, DEFAULT_WINDOW_SECONDS, encode_speech, video_frame_count
from .errors import AudioInputError
from .loudness import soft_limit
from .wav2vec2 import Wav2Vec2Model

SpeakerMode = Literal["para", "add", "timeline"]


@dataclass(frozen=True)
class SpeakerLayout:
    tracks: torch.Tensor  # [P, S] float32, equal length, silence outside each speaker's span
    mix: torch.Tensor  # [S] float32, sum of the tracks (soft-limited if it would exceed 1.0)
    starts: tuple[int, ...]  # first sample of each speaker's audio on the timeline
    lengths: tuple[int, ...]  # samples of each speaker's own audio (0 for a silent speaker)
    sample_rate: int

    @property
    def num_samples(self) -> int:
        return int(self.tracks.shape[-1])

    def start_frames(self, fps: float) -> tuple[int, ...]:
        """Video frame in which each speaker's audio begins."""
        return tuple(int(math.floor(s * fps / self.sample_rate + 1e-9)) for s in self.starts)


def _frame_boundary_at_or_after(sample: int, sample_rate: int, fps: float) -> int:
    """First sample of the first video frame that starts at or after ``sample``."""
    frame = math.ceil(sample * fps / sample_rate - 1e-9)
    return int(math.ceil(frame * sample_rate / fps - 1e-9))


def arrange_speakers(
    tracks: Sequence[torch.Tensor | np.ndarray | None],
    mode: SpeakerMode = "para",
    *,
    starts_seconds: Sequence[float] | None = None,
    sample_rate: int = 16000,
    fps: float | None = None,
) -> SpeakerLayout:
    """Place mono tracks ([S_k] each, at ``sample_rate``) on one timeline; see the module docstring."""
    if not tracks:
        raise AudioInputError("no speaker tracks given; pass at least one waveform (or None for a silent speaker)")
    waves = [None if t is None else torch.as_tensor(t, dtype=torch.float32).reshape(-1) for t in tracks]
    lengths = [0 if w is None else int(w.numel()) for w in waves]
    if all(n == 0 for n in lengths):
        raise AudioInputError("every speaker track is silent or empty; give at least one track with audio")

    if mode == "para":
        starts = [0] * len(waves)
    elif mode == "add":
        starts, cursor = [], 0
        for n in lengths:
            if fps is not None:
                cursor = _frame_boundary_at_or_after(cursor, sample_rate, fps)
            starts.append(cursor)
            cursor += n
    elif mode == "timeline":
        if starts_seconds is None or len(starts_seconds) != len(waves):
            raise AudioInputError(
                f"timeline mode needs one start time per track ({len(waves)}), got {starts_seconds!r}")
        if any(not math.isfinite(s) or s < 0 for s in starts_seconds):
            raise AudioInputError(f"timeline start times must be finite and >= 0 seconds, got {list(starts_seconds)}")
        starts = [int(round(s * sample_rate)) for s in starts_seconds]
    else:
        raise AudioInputError(f"unknown speaker mode {mode!r}; use 'para', 'add' or 'timeline'")

    total = max(s + n for s, n in zip(starts, lengths))
    placed = torch.zeros(len(waves), total)
    for k, (w, s, n) in enumerate(zip(waves, starts, lengths)):
        if w is not None:
            placed[k, s:s + n] = w
    mix = placed.sum(0)
    if float(mix.abs().max()) > 1.0:
        mix = torch.from_numpy(soft_limit(mix.numpy()))
    return SpeakerLayout(placed, mix, tuple(starts), tuple(lengths), sample_rate)


def encode_speakers(
    model: Wav2Vec2Model,
    layout: SpeakerLayout,
    fps: float = DEFAULT_FPS,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
) -> torch.Tensor:
    """Encode each speaker's full-length track separately -> [P, T, L, D], T = round(S / rate * fps).

    Silent speakers are encoded as silence (as the official code does for a 'None' path), not zeroed.
    """
    num_frames = video_frame_count(layout.num_samples, layout.sample_rate, fps)
    return torch.stack([
        encode_speech(model, track, fps=fps, sample_rate=layout.sample_rate, window_seconds=window_seconds,
                      num_frames=num_frames)
        for track in layout.tracks
    ])


def null_speech_features(features: torch.Tensor) -> torch.Tensor:
    """The "null audio" for audio guidance: zeros shaped like one speaker's features [T, L, D].

    Accepts [T, L, D] or [P, T, L, D] (returns one speaker's worth, as the official uncond pass uses).
    """
    one = features if features.ndim == 3 else features[0]
    return torch.zeros_like(one)
