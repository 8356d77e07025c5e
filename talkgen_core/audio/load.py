"""``load_audio``: any source to mono float32 at the encoder's rate, loudness-normalised.

Order, as in the official pipeline (librosa load at 16 kHz, then pyloudnorm): decode, check, downmix
by averaging channels, resample with soxr, normalise loudness at the output rate.

Documented behaviours instead of errors: all-silent audio is returned as silence (it encodes to a still,
closed-mouth face); audio shorter than one 0.4 s loudness block is returned without normalisation.
"""

from __future__ import annotations

import numpy as np
import torch

from .decode import DEFAULT_TIMEOUT_S, AudioSource, decode_audio
from .errors import AudioInputError
from .loudness import normalize_loudness
from .resample import check_sample_rate, resample

DEFAULT_SAMPLE_RATE = 16000
DEFAULT_TARGET_LUFS = -23.0


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
    decoded = decode_audio(source, timeout_s=timeout_s)
    samples = decoded.samples  # [C, S]
    if samples.shape[-1] == 0 or samples.shape[0] == 0:
        raise AudioInputError(f"{decoded.name} contains no samples (zero length); pass audio with sound in it")
    bad = ~np.isfinite(samples)
    if bad.any():
        first = int(np.argwhere(bad)[0][-1])
        raise AudioInputError(
            f"{decoded.name} contains {int(bad.sum())} NaN/Inf samples (first at {first / decoded.sample_rate:.3f} s); "
            "the upstream node or file produced invalid audio: re-export it or clean it (e.g. nan_to_num)"
        )
    mono = samples.mean(axis=0, dtype=np.float32)  # [S]
    mono = resample(mono, decoded.sample_rate, sample_rate)
    if target_lufs is not None:
        mono = normalize_loudness(mono, sample_rate, float(target_lufs)).samples
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
