"""Loudness normalisation to a target integrated loudness (ITU-R BS.1770, measured as pyloudnorm does).

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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import AudioInputError
from .kweighting import BlockFilter, k_weighting
from .spill import SpillRows

log = logging.getLogger(__name__)

SILENCE_GATE_LUFS = -70.0  # BS.1770 absolute gate: anything quieter is treated as silence
ABSURD_LOUDNESS = 100.0  # the official skip rule: |L| > 100 LUFS is not a measurement
BLOCK_SECONDS = 0.4  # BS.1770 gating block; shorter clips cannot be measured
BLOCK_OVERLAP = 0.75
MEASURE_SLICE = 1 << 17  # samples filtered at a time (1 MiB in float64: served by mmap, returned when freed)
LIMIT_KNEE = 0.9
LIMIT_CEILING = 1.0
MAKEUP_ITERATIONS = 4
MAKEUP_TOLERANCE_LU = 0.1
MAX_MAKEUP_DB = 12.0


@dataclass(frozen=True)
class LoudnessResult:
    samples: np.ndarray | SpillRows  # [S] float32, on disk when the input was
    measured_lufs: float  # before normalisation; -inf for silence, nan when not measurable
    gain_db: float  # applied gain; 0.0 when skipped
    skipped_reason: str | None  # why no gain was applied, None when it was
    limited: bool  # the soft limiter touched some peaks


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of mono ``samples`` [S]; nan if shorter than one 0.4 s block.

    pyloudnorm's BS.1770 measurement (its K-weighting filters, blocks and gates; the filters without scipy,
    see ``kweighting``), computed slice by slice so the working memory is one slice, not several float64
    copies of the clip.
    """
    if samples.shape[-1] < int(math.ceil(BLOCK_SECONDS * sample_rate)) + 1:
        return float("nan")
    return gated_loudness(block_powers(samples, sample_rate))


def block_powers(samples: np.ndarray, sample_rate: int, slice_samples: int = MEASURE_SLICE) -> np.ndarray:
    """Mean square of the K-weighted signal in each 400 ms gating block (75 % overlap): [J] float64.

    The filters carry their state across slices (exactly one pass over the whole clip) and every block is
    summed over the same samples in the same order as pyloudnorm does.
    """
    stages = [BlockFilter(f) for f in k_weighting(sample_rate)]
    states = [np.zeros(2) for _ in stages]
    total = samples.shape[-1]
    step = BLOCK_SECONDS * (1.0 - BLOCK_OVERLAP)
    count = int(np.round((total / sample_rate - BLOCK_SECONDS) / step)) + 1
    bounds = [(int(BLOCK_SECONDS * j * (1.0 - BLOCK_OVERLAP) * sample_rate),
               int(BLOCK_SECONDS * (j * (1.0 - BLOCK_OVERLAP) + 1) * sample_rate)) for j in range(count)]
    powers = np.zeros(count)
    kept = np.zeros(0)  # squared filtered samples from ``kept_from`` on
    kept_from, block = 0, 0
    for start in range(0, total, slice_samples):
        y = np.asarray(samples[start:start + slice_samples], dtype=np.float64)
        for k, stage in enumerate(stages):
            y, states[k] = stage(y, states[k])
        kept = np.concatenate([kept, np.square(y)])
        end = start + y.shape[0]
        while block < count and (bounds[block][1] <= end or end == total):
            lo, hi = bounds[block]
            powers[block] = np.sum(kept[lo - kept_from:hi - kept_from]) / (BLOCK_SECONDS * sample_rate)
            block += 1
        if block < count:
            kept, kept_from = kept[bounds[block][0] - kept_from:], bounds[block][0]
    return powers


def gated_loudness(powers: np.ndarray) -> float:
    """BS.1770 integrated loudness from block powers: absolute gate at -70 LUFS, relative gate 10 LU below."""
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = -0.691 + 10.0 * np.log10(powers)
        above = powers[levels >= SILENCE_GATE_LUFS]
        relative = -0.691 + 10.0 * np.log10(np.mean(above)) - 10.0 if above.size else np.nan
        gated = powers[(levels > relative) & (levels > SILENCE_GATE_LUFS)]
        mean = np.nan_to_num(np.mean(gated)) if gated.size else 0.0
        return float(-0.691 + 10.0 * np.log10(mean))


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


def normalize_loudness(samples: np.ndarray | SpillRows, sample_rate: int, target_lufs: float) -> LoudnessResult:
    """Scale mono ``samples`` [S] to ``target_lufs``; silence, near-silence and sub-block clips are left alone.

    Samples on disk (``SpillRows``) are measured, scaled and limited block by block into new temp files: every
    step is per sample or a block-wise measurement, so the result equals the in-memory one bit for bit.
    """
    if not (math.isfinite(target_lufs) and SILENCE_GATE_LUFS < target_lufs <= 0.0):
        raise AudioInputError(
            f"target loudness {target_lufs} LUFS is outside ({SILENCE_GATE_LUFS:.0f}, 0]; use -23 (the "
            "official setting) or None to skip normalisation"
        )
    x = samples if isinstance(samples, SpillRows) else np.asarray(samples, dtype=np.float32)
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
    limited = _peak(scaled) > LIMIT_CEILING
    if limited:
        # Limiting lowers the loudness when peaks carry much of the energy: add make-up gain and
        # limit again until the loudness is back on target (bounded, for signals that are all peaks).
        base_gain = gain_db
        for _ in range(MAKEUP_ITERATIONS):
            scaled = _per_block(scaled, soft_limit)
            error = target_lufs - integrated_loudness(scaled, sample_rate)
            if not math.isfinite(error) or abs(error) < MAKEUP_TOLERANCE_LU:
                break
            gain_db = min(gain_db + error, base_gain + MAX_MAKEUP_DB)
            scaled = _apply_gain(x, gain_db)
        else:
            scaled = _per_block(scaled, soft_limit)
        log.info("loudness gain %+.1f dB would clip; soft-limited the peaks", gain_db)
    return LoudnessResult(scaled, measured, gain_db, None, limited)


def _apply_gain(x: np.ndarray | SpillRows, gain_db: float) -> np.ndarray | SpillRows:
    gain = np.float32(10.0 ** (gain_db / 20.0))
    return _per_block(x, lambda block: np.multiply(block, gain, dtype=np.float32))


def _per_block(x: np.ndarray | SpillRows, step: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | SpillRows:
    """``step`` (per sample) over the samples in memory, or block by block into a new temp file."""
    if not isinstance(x, SpillRows):
        return step(x)
    out = SpillRows(x.row_shape, x.dtype)
    for block in x.blocks():
        out.append(step(block.numpy()))
    return out


def _peak(x: np.ndarray | SpillRows) -> float:
    blocks = x.blocks() if isinstance(x, SpillRows) else [x]
    return max((float(np.abs(np.asarray(b)).max(initial=0.0)) for b in blocks), default=0.0)
