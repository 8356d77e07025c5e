"""Loudness normalisation to a target integrated loudness (ITU-R BS.1770 via pyloudnorm).

The official pipeline normalises speech to -23 LUFS before wav2vec2 and skips the step when the
measured loudness is absurd (|L| > 100, e.g. digital silence). We skip it too for anything quieter than
the BS.1770 absolute gate (-70 LUFS), so silence and near-silence are never amplified into noise.

Peaks: speech at -23 LUFS rarely peaks above -6 dBFS, but clicks or very compressed material can. When
the gain would push the peak past 1.0, a soft limiter (identity below 0.9, tanh knee above, asymptote
1.0) is applied to the loud samples only, so nothing clips; make-up gain (at most +12 dB, re-limited)
then brings the loudness back to the target when the limited peaks carried much of the energy. The
official code does not limit (it feeds values above 1.0 to the encoder); the difference only affects
those rare peak samples.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .errors import AudioInputError

log = logging.getLogger(__name__)

SILENCE_GATE_LUFS = -70.0  # BS.1770 absolute gate: anything quieter is treated as silence
ABSURD_LOUDNESS = 100.0  # the official skip rule: |L| > 100 LUFS is not a measurement
BLOCK_SECONDS = 0.4  # BS.1770 gating block; shorter clips cannot be measured
LIMIT_KNEE = 0.9
LIMIT_CEILING = 1.0
MAKEUP_ITERATIONS = 4
MAKEUP_TOLERANCE_LU = 0.1
MAX_MAKEUP_DB = 12.0


@dataclass(frozen=True)
class LoudnessResult:
    samples: np.ndarray  # [S] float32
    measured_lufs: float  # before normalisation; -inf for silence, nan when not measurable
    gain_db: float  # applied gain; 0.0 when skipped
    skipped_reason: str | None  # why no gain was applied, None when it was
    limited: bool  # the soft limiter touched some peaks


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of mono ``samples`` [S]; nan if shorter than one 0.4 s block."""
    import pyloudnorm

    if samples.shape[-1] < int(math.ceil(BLOCK_SECONDS * sample_rate)) + 1:
        return float("nan")
    meter = pyloudnorm.Meter(sample_rate, block_size=BLOCK_SECONDS)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(meter.integrated_loudness(np.asarray(samples, dtype=np.float64)))


def soft_limit(samples: np.ndarray, knee: float = LIMIT_KNEE, ceiling: float = LIMIT_CEILING) -> np.ndarray:
    """Identity for |x| <= knee; above it a tanh curve with slope 1 at the knee, kept below ``ceiling``.

    Computed in float64; the float32 result is capped one ulp below ``ceiling``, where tanh saturates.
    """
    x = np.asarray(samples, dtype=np.float32)
    mag = np.abs(x)
    over = mag > knee
    if not over.any():
        return x
    out = x.copy()
    span = ceiling - knee
    limited = knee + span * np.tanh((mag[over].astype(np.float64) - knee) / span)
    cap = np.nextafter(np.float32(ceiling), np.float32(0.0))
    out[over] = np.sign(x[over]) * np.minimum(limited, cap).astype(np.float32)
    return out


def normalize_loudness(samples: np.ndarray, sample_rate: int, target_lufs: float) -> LoudnessResult:
    """Scale mono ``samples`` [S] to ``target_lufs``; silence, near-silence and sub-block clips are left alone."""
    if not (math.isfinite(target_lufs) and SILENCE_GATE_LUFS < target_lufs <= 0.0):
        raise AudioInputError(
            f"target loudness {target_lufs} LUFS is outside ({SILENCE_GATE_LUFS:.0f}, 0]; use -23 (the "
            "official setting) or None to skip normalisation"
        )
    x = np.asarray(samples, dtype=np.float32)
    measured = integrated_loudness(x, sample_rate)
    reason: str | None = None
    if math.isnan(measured):
        reason = f"shorter than one {BLOCK_SECONDS} s loudness block"
    elif not math.isfinite(measured) or measured < SILENCE_GATE_LUFS:
        reason = "silent (below the -70 LUFS gate)"
    elif abs(measured) > ABSURD_LOUDNESS:
        reason = f"implausible loudness {measured:.1f} LUFS"
    if reason is not None:
        log.info("loudness normalisation skipped: %s", reason)
        return LoudnessResult(x, measured, 0.0, reason, False)

    gain_db = target_lufs - measured
    scaled = _apply_gain(x, gain_db)
    limited = bool(np.abs(scaled).max(initial=0.0) > LIMIT_CEILING)
    if limited:
        # Limiting lowers the loudness when peaks carry much of the energy: add make-up gain and
        # limit again until the loudness is back on target (bounded, for signals that are all peaks).
        base_gain = gain_db
        for _ in range(MAKEUP_ITERATIONS):
            scaled = soft_limit(scaled)
            error = target_lufs - integrated_loudness(scaled, sample_rate)
            if not math.isfinite(error) or abs(error) < MAKEUP_TOLERANCE_LU:
                break
            gain_db = min(gain_db + error, base_gain + MAX_MAKEUP_DB)
            scaled = _apply_gain(x, gain_db)
        else:
            scaled = soft_limit(scaled)
        log.info("loudness gain %+.1f dB would clip; soft-limited the peaks", gain_db)
    return LoudnessResult(scaled, measured, gain_db, None, limited)


def _apply_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    return (x * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
