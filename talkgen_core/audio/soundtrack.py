"""The video's soundtrack: the user's own audio at its own rate, channels and level.

The encoder gets a 16 kHz mono, loudness-normalised copy of each voice (``load.py``); the written video
should not. ``original`` (the default) keeps each speaker's decoded audio as it is and places it on the
speakers' timeline; ``normalized`` is the encoder's 16 kHz mono mix, for users who want the levelled
version. AAC holds at most 8 channels: audio with more is mixed down to mono.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .loudness import soft_limit
from .resample import resample
from .spill import SpillRows, SpilledSamples

if TYPE_CHECKING:
    from .load import Voice
    from .speakers import SpeakerLayout

log = logging.getLogger(__name__)

SOUNDTRACK_CHOICES: tuple[str, ...] = ("original", "normalized")
MAX_CHANNELS = 8  # the most AAC (and the mp4 writer) can carry


@dataclass(frozen=True)
class Soundtrack:
    samples: torch.Tensor | SpilledSamples  # [C, S] float32, 1 <= C <= MAX_CHANNELS; on disk for long inputs
    sample_rate: int

    @property
    def seconds(self) -> float:
        return int(self.samples.shape[-1]) / self.sample_rate


def check_choice(choice: str) -> str:
    if choice not in SOUNDTRACK_CHOICES:
        raise ValueError(f"soundtrack {choice!r} is not one of {', '.join(SOUNDTRACK_CHOICES)}; use 'original' "
                         "(the audio as given) or 'normalized' (the encoder's 16 kHz mono, loudness-normalised copy)")
    return choice


def as_soundtrack(samples: np.ndarray | torch.Tensor | SpilledSamples, sample_rate: int,
                  name: str = "audio") -> Soundtrack:
    """Decoded audio [C, S] (or [S]) as a soundtrack; more than 8 channels are averaged to mono."""
    if isinstance(samples, SpilledSamples):
        if samples.shape[0] <= MAX_CHANNELS:
            return Soundtrack(samples, int(sample_rate))
        log.warning("%s has %d channels; AAC holds at most %d, so the soundtrack is mixed down to mono", name,
                    samples.shape[0], MAX_CHANNELS)
        mono = SpillRows()
        for block in samples.blocks():
            mono.append(block.mean(0))
        return Soundtrack(SpilledSamples(mono), int(sample_rate))
    wave = torch.as_tensor(samples, dtype=torch.float32)
    wave = wave[None] if wave.ndim == 1 else wave
    if wave.shape[0] > MAX_CHANNELS:
        log.warning("%s has %d channels; AAC holds at most %d, so the soundtrack is mixed down to mono", name,
                    wave.shape[0], MAX_CHANNELS)
        wave = wave.mean(0, keepdim=True)
    return Soundtrack(wave, int(sample_rate))


def _with_channels(wave: torch.Tensor, channels: int) -> torch.Tensor:
    """[C, S] -> [channels, S]: unchanged when C matches, else the mono mix repeated on every channel."""
    if wave.shape[0] == channels:
        return wave
    return wave.mean(0, keepdim=True).expand(channels, -1)


def mix_soundtracks(tracks: Sequence[Soundtrack | None], starts: Sequence[int], timeline_rate: int) -> Soundtrack:
    """Place each speaker's soundtrack at its start (samples at ``timeline_rate``) and sum them.

    One speaker starting at 0 is returned as given (no copy). Several are brought to the highest rate and
    channel count among them; a sum that would exceed 1.0 goes through the loudness module's soft limiter.
    """
    present = [(t, s) for t, s in zip(tracks, starts) if t is not None]
    if not present:
        raise ValueError("no speaker has audio; give at least one voice")
    if len(present) == 1 and present[0][1] == 0:
        return present[0][0]
    rate = max(t.sample_rate for t, _ in present)
    channels = max(int(t.samples.shape[0]) for t, _ in present)
    placed = []
    for track, start in present:
        wave = _in_memory(track.samples)
        if track.sample_rate != rate:
            wave = torch.from_numpy(resample(wave.numpy(), track.sample_rate, rate))
        placed.append((round(start * rate / timeline_rate), _with_channels(wave, channels)))
    mix = torch.zeros(channels, max(s + int(w.shape[-1]) for s, w in placed))
    for start, wave in placed:
        mix[:, start:start + wave.shape[-1]] += wave
    if float(mix.abs().max()) > 1.0:
        mix = torch.from_numpy(soft_limit(mix.numpy()))
    return Soundtrack(mix, rate)


def _in_memory(samples: torch.Tensor | SpilledSamples) -> torch.Tensor:
    """Samples [C, S] as a tensor. Mixing several speakers' originals (each resampled with soxr in one piece)
    is the one soundtrack step that loads long audio from disk."""
    return samples[:, :] if isinstance(samples, SpilledSamples) else samples


def speech_soundtrack(voices: Sequence[Voice | None], layout: SpeakerLayout, choice: str) -> Soundtrack:
    """The soundtrack for voices placed by ``layout``: each original on its start, or the encoder's mix."""
    check_choice(choice)
    if choice == "normalized":
        mix = layout.mix
        return Soundtrack(SpilledSamples(mix) if isinstance(mix, SpillRows) else mix[None], layout.sample_rate)
    return mix_soundtracks([None if v is None else v.soundtrack for v in voices], layout.starts, layout.sample_rate)
