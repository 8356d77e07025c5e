"""``load_audio``: any source to mono float32 at the encoder's rate, loudness-normalised; ``load_voice``
also keeps the decoded audio, unchanged, as the video's soundtrack.

Order, as in the official pipeline (librosa load at 16 kHz, then pyloudnorm): decode, check, downmix
by averaging channels, resample with soxr, normalise loudness at the output rate.

Documented behaviours instead of errors: all-silent audio is returned as silence (it encodes to a still,
closed-mouth face); audio shorter than one 0.4 s loudness block is returned without normalisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .decode import DEFAULT_TIMEOUT_S, AudioSource, DecodedAudio, decode_audio, decode_audio_to_disk
from .errors import AudioInputError
from .loudness import normalize_loudness
from .resample import check_sample_rate, resample, resample_to_disk
from .soundtrack import Soundtrack, as_soundtrack
from .spill import SpillRows, SpilledSamples

DEFAULT_SAMPLE_RATE = 16000
DEFAULT_TARGET_LUFS = -23.0
CHECK_BLOCK = 1 << 18  # samples per channel checked at a time


@dataclass(frozen=True)
class Voice:
    """One decode of a voice, two uses: the encoder's input and the video's soundtrack."""

    waveform: torch.Tensor | SpillRows  # [S] mono float32 at the encoder's rate, loudness-normalised unless asked
    # not to be; on disk from spill_voice
    soundtrack: Soundtrack  # the audio as decoded: its own rate, channels and level


def load_audio(
    source: AudioSource,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> torch.Tensor:
    """Decode ``source`` (path or ComfyUI AUDIO dict) to a 1-D float32 tensor [S] at ``sample_rate``.

    ``target_lufs=None`` skips loudness normalisation. Raises ``AudioInputError`` (a ``ValueError``)
    naming the input and the fix for missing/corrupt files, empty tracks, broken sample rates and
    NaN/Inf samples.
    """
    sample_rate = check_sample_rate(sample_rate, "requested sample_rate")
    return _encoder_input(_checked(decode_audio(source, timeout_s=timeout_s)), sample_rate, target_lufs)


def load_voice(
    source: AudioSource,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Voice:
    """As :func:`load_audio`, and keep the decoded audio unchanged as the soundtrack."""
    sample_rate = check_sample_rate(sample_rate, "requested sample_rate")
    decoded = _checked(decode_audio(source, timeout_s=timeout_s))
    return Voice(_encoder_input(decoded, sample_rate, target_lufs),
                 as_soundtrack(decoded.samples, decoded.sample_rate, decoded.name))


def spill_voice(
    source: AudioSource,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Voice:
    """As :func:`load_voice`, with the encoder's copy and (for a file) the decoded audio kept on disk
    (``spill.py``), each step done block by block, bit for bit the same: a voice of any length in bounded RAM."""
    sample_rate = check_sample_rate(sample_rate, "requested sample_rate")
    decoded = _checked(decode_audio_to_disk(source, timeout_s=timeout_s))
    if not isinstance(decoded.samples, SpilledSamples):  # a ComfyUI dict: already in memory
        return Voice(_encoder_input(decoded, sample_rate, target_lufs),
                     as_soundtrack(decoded.samples, decoded.sample_rate, decoded.name))
    mono = SpillRows()
    for block in decoded.samples.blocks():  # [C, n], laid out as the in-memory [C, S] so the mean is the same
        mono.append(np.ascontiguousarray(block.numpy()).mean(axis=0, dtype=np.float32))
    mono = resample_to_disk(mono, decoded.sample_rate, sample_rate)
    if target_lufs is not None:
        mono = normalize_loudness(mono, sample_rate, float(target_lufs)).samples
    return Voice(mono, as_soundtrack(decoded.samples, decoded.sample_rate, decoded.name))


def _checked(decoded: DecodedAudio) -> DecodedAudio:
    samples = decoded.samples  # [C, S]
    if samples.shape[-1] == 0 or samples.shape[0] == 0:
        raise AudioInputError(f"{decoded.name} contains no samples (zero length); pass audio with sound in it")
    count, first = 0, -1
    for start, block in _blocks(samples):  # a clip-sized mask would be a full-length temporary
        bad = ~np.isfinite(np.asarray(block))
        if bad.any():
            count += int(bad.sum())
            first = first if first >= 0 else start + int(np.argwhere(bad.any(axis=0))[0][0])
    if count:
        raise AudioInputError(
            f"{decoded.name} contains {count} NaN/Inf samples (first at {first / decoded.sample_rate:.3f} s); "
            "the upstream node or file produced invalid audio: re-export it or clean it (e.g. nan_to_num)"
        )
    return decoded


def _blocks(samples: np.ndarray | SpilledSamples) -> Iterator[tuple[int, np.ndarray | torch.Tensor]]:
    """(first sample, [C, n] block) over the samples in memory or on disk."""
    if isinstance(samples, SpilledSamples):
        start = 0
        for block in samples.blocks():
            yield start, block
            start += int(block.shape[1])
        return
    for start in range(0, samples.shape[1], CHECK_BLOCK):
        yield start, samples[:, start:start + CHECK_BLOCK]


def _encoder_input(decoded: DecodedAudio, sample_rate: int, target_lufs: float | None) -> torch.Tensor:
    """Downmix, resample and normalise: [C, S] at the source rate -> [S] at ``sample_rate``."""
    mono = decoded.samples.mean(axis=0, dtype=np.float32)  # [S]
    mono = resample(mono, decoded.sample_rate, sample_rate)
    if target_lufs is not None:
        mono = normalize_loudness(mono, sample_rate, float(target_lufs)).samples
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
