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

from .encode import DEFAULT_FPS, DEFAULT_WINDOW_SECONDS, encode_speech, encode_speech_to_disk, video_frame_count
from .errors import AudioInputError
from .loudness import soft_limit
from .spill import SpilledStack, SpillRows
from .wav2vec2 import Wav2Vec2Model

SpeakerMode = Literal["para", "add", "timeline"]
SILENCE_BLOCK = 1 << 20  # samples written or summed at a time on disk


@dataclass(frozen=True)
class SpeakerLayout:
    tracks: torch.Tensor | SpilledStack  # [P, S] float32, equal length, silence outside each speaker's span
    mix: torch.Tensor | SpillRows  # [S] float32, sum of the tracks (soft-limited if it would exceed 1.0)
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
    starts = _starts(lengths, mode, starts_seconds, sample_rate, fps)
    total = max(s + n for s, n in zip(starts, lengths))
    placed = torch.zeros(len(waves), total)
    for k, (w, s, n) in enumerate(zip(waves, starts, lengths)):
        if w is not None:
            placed[k, s:s + n] = w
    mix = placed.sum(0)
    if float(mix.abs().max()) > 1.0:
        mix = torch.from_numpy(soft_limit(mix.numpy()))
    return SpeakerLayout(placed, mix, tuple(starts), tuple(lengths), sample_rate)


def arrange_speakers_on_disk(
    tracks: Sequence[SpillRows | torch.Tensor | None],
    mode: SpeakerMode = "para",
    *,
    starts_seconds: Sequence[float] | None = None,
    sample_rate: int = 16000,
    fps: float | None = None,
) -> SpeakerLayout:
    """As :func:`arrange_speakers`, the placed tracks (a ``SpilledStack`` [P, S]) and the mix (``SpillRows`` [S])
    in temp files, written block by block: one speaker covering the timeline is used as given, no copy."""
    if not tracks:
        raise AudioInputError("no speaker tracks given; pass at least one waveform (or None for a silent speaker)")
    rows = [t if t is None or isinstance(t, SpillRows) else _spilled(t) for t in tracks]
    lengths = [0 if r is None else len(r) for r in rows]
    starts = _starts(lengths, mode, starts_seconds, sample_rate, fps)
    total = max(s + n for s, n in zip(starts, lengths))
    placed = [r if r is not None and (s, n) == (0, total) else _placed(r, s, total)
              for r, s, n in zip(rows, starts, lengths)]
    mix = placed[0] if len(placed) == 1 else _summed(placed)
    if max(float(block.abs().max()) for block in mix.blocks()) > 1.0:
        limited = SpillRows()
        for block in mix.blocks():
            limited.append(soft_limit(block.numpy()))
        mix = limited
    return SpeakerLayout(SpilledStack(placed), mix, tuple(starts), tuple(lengths), sample_rate)


def _starts(lengths: Sequence[int], mode: SpeakerMode, starts_seconds: Sequence[float] | None, sample_rate: int,
            fps: float | None) -> list[int]:
    """First sample of each track on the timeline (see the module docstring for the modes)."""
    if all(n == 0 for n in lengths):
        raise AudioInputError("every speaker track is silent or empty; give at least one track with audio")
    if mode == "para":
        return [0] * len(lengths)
    if mode == "add":
        starts, cursor = [], 0
        for n in lengths:
            if fps is not None:
                cursor = _frame_boundary_at_or_after(cursor, sample_rate, fps)
            starts.append(cursor)
            cursor += n
        return starts
    if mode == "timeline":
        if starts_seconds is None or len(starts_seconds) != len(lengths):
            raise AudioInputError(
                f"timeline mode needs one start time per track ({len(lengths)}), got {starts_seconds!r}")
        if any(not math.isfinite(s) or s < 0 for s in starts_seconds):
            raise AudioInputError(f"timeline start times must be finite and >= 0 seconds, got {list(starts_seconds)}")
        return [int(round(s * sample_rate)) for s in starts_seconds]
    raise AudioInputError(f"unknown speaker mode {mode!r}; use 'para', 'add' or 'timeline'")


def _spilled(wave: torch.Tensor) -> SpillRows:
    rows = SpillRows()
    rows.append(torch.as_tensor(wave, dtype=torch.float32).reshape(-1))
    return rows


def _placed(track: SpillRows | None, start: int, total: int) -> SpillRows:
    """``track`` at ``start`` on a silent timeline of ``total`` samples (all silence for None)."""
    out = SpillRows()
    _silence(out, start)
    if track is not None:
        for block in track.blocks():
            out.append(block)
    _silence(out, total - len(out))
    return out


def _silence(rows: SpillRows, samples: int) -> None:
    for start in range(0, samples, SILENCE_BLOCK):
        rows.append(torch.zeros(min(SILENCE_BLOCK, samples - start)))


def _summed(tracks: Sequence[SpillRows]) -> SpillRows:
    """The per-sample sum of equal-length tracks, summed over speakers as ``placed.sum(0)`` does."""
    out = SpillRows()
    for start in range(0, len(tracks[0]), SILENCE_BLOCK):
        out.append(torch.stack([t[start:start + SILENCE_BLOCK] for t in tracks]).sum(0))
    return out


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


def encode_speakers_to_disk(
    model: Wav2Vec2Model,
    layout: SpeakerLayout,
    fps: float = DEFAULT_FPS,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
) -> SpilledStack:
    """As :func:`encode_speakers`, each speaker's features [T, L, D] in a temp file (``spill.py``), bit for bit
    the same: what a long run conditions on without holding them in RAM."""
    num_frames = video_frame_count(layout.num_samples, layout.sample_rate, fps)
    return SpilledStack([
        encode_speech_to_disk(model, track, fps=fps, sample_rate=layout.sample_rate, window_seconds=window_seconds,
                              num_frames=num_frames)
        for track in layout.tracks
    ])


def null_speech_features(features: torch.Tensor) -> torch.Tensor:
    """The "null audio" for audio guidance: zeros shaped like one speaker's features [T, L, D].

    Accepts [T, L, D] or [P, T, L, D] (returns one speaker's worth, as the official uncond pass uses).
    """
    one = features if features.ndim == 3 else features[0]
    return torch.zeros_like(one)
