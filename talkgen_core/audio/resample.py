"""Sample-rate conversion with soxr (the library librosa uses by default, as the official pipeline does)."""

from __future__ import annotations

import numpy as np

from talkgen_core.requirements import require

from .errors import AudioInputError
from .spill import SpillRows

# Rates outside this range are not audio any file format produces; they signal a broken header or a
# caller that passed a duration or a frame rate where a sample rate belongs.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000


def check_sample_rate(rate: int, what: str = "sample rate") -> int:
    """Return ``rate`` if it is a plausible audio sample rate, else raise naming ``what``."""
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool):
        raise AudioInputError(f"{what} must be an integer number of Hz, got {rate!r}")
    if not MIN_SAMPLE_RATE <= int(rate) <= MAX_SAMPLE_RATE:
        raise AudioInputError(
            f"{what} of {rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; the header is broken "
            "or a wrong number was passed: re-export the audio or pass the real rate (e.g. 16000, 44100, 48000)"
        )
    return int(rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample ``samples`` ([S] or [C, S], float) along the last axis; returns float32.

    Output length is ``round(S * to_rate / from_rate)`` (soxr's own rounding), so durations stay exact
    to within one output sample.
    """
    soxr = require("soxr", "resampling audio")
    from_rate = check_sample_rate(from_rate, "source sample rate")
    to_rate = check_sample_rate(to_rate, "target sample rate")
    samples = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate or samples.shape[-1] == 0:
        return samples
    if samples.ndim == 1:
        return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)
    # soxr wants [S, C]
    out = soxr.resample(np.ascontiguousarray(samples.T), from_rate, to_rate, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def resample_to_disk(rows: SpillRows, from_rate: int, to_rate: int) -> SpillRows:
    """Mono samples on disk [S] resampled block by block with soxr's stream (bit for bit what :func:`resample`
    gives for the whole clip) into a new ``SpillRows``; the same rows when the rates match."""
    soxr = require("soxr", "resampling audio")
    from_rate = check_sample_rate(from_rate, "source sample rate")
    to_rate = check_sample_rate(to_rate, "target sample rate")
    if from_rate == to_rate or len(rows) == 0:
        return rows
    stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")
    out = SpillRows()
    for block in rows.blocks():
        out.append(stream.resample_chunk(block.numpy(), last=False))
    out.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return out
