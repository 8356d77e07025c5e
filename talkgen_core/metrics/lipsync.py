"""Weight-free lip sync: measured mouth opening against the audio envelope over a range of lags.

Shaped like SyncNet's evaluation (offset search over -15..+15 video frames, a best offset, and a
confidence = how far the best offset stands out from the median), but the two signals are simple
measurements instead of learned embeddings:
- mouth opening = soft count of mouth-interior-coloured pixels (the renderer's reserved dark crimson) in the
  lower part of the frame, as a fraction of that region;
- audio envelope = RMS of the samples belonging to each video frame.
These numbers are only meaningful on faces drawn in the renderer's colour conventions (synthetic domain).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.metrics.colour import colour_closeness
from talkgen_core.metrics.frames import to_unit_rgb
from talkgen_core.synth.envelope import frame_rms
from talkgen_core.synth.palette import MOUTH_INTERIOR_RGB

MOUTH_DELTA_E_TOLERANCE = 20.0  # a pixel counts fully at delta E 0, not at all at this distance
LOWER_FACE_START = 0.45  # fraction of the height where the mouth search region begins
DEFAULT_MAX_LAG = 15


@dataclass(frozen=True)
class LipSyncResult:
    """Sign convention: ``best_lag`` > 0 means the video is late (the mouth moves after the sound);
    < 0 means the mouth leads the sound by that many frames."""

    best_lag: int
    peak_correlation: float  # Pearson correlation at the best lag
    median_correlation: float  # median over all lags
    confidence: float  # peak - median (the Sync-C shape)
    lags: Tensor  # [2 * max_lag + 1] int
    correlations: Tensor  # [2 * max_lag + 1] float
    opening_std: float  # spread of the measured opening; 0 means no moving mouth was found (lag meaningless)


def measure_mouth_opening(frames: Tensor, region: Tensor | None = None) -> Tensor:
    """frames [T, 3, H, W] (uint8 or float in [-1, 1]) -> mouth opening [T]: the fraction of the search
    region that has the mouth-interior colour. The region is the lower face of a centred portrait, or
    ``region`` ([H, W] bool, e.g. a box around a known mouth) where the face stands elsewhere."""
    rgb = to_unit_rgb(frames)
    if region is None:
        top = int(round(rgb.shape[-2] * LOWER_FACE_START))
        return colour_closeness(rgb[..., top:, :], MOUTH_INTERIOR_RGB, MOUTH_DELTA_E_TOLERANCE).mean(dim=(-2, -1))
    if region.shape != rgb.shape[-2:] or region.dtype != torch.bool or not bool(region.any()):
        raise ValueError(f"mouth region must be a non-empty [H, W] = {tuple(rgb.shape[-2:])} bool mask, got "
                         f"{tuple(region.shape)} {region.dtype}")
    weight = colour_closeness(rgb, MOUTH_INTERIOR_RGB, MOUTH_DELTA_E_TOLERANCE)  # [T, H, W]
    return weight[..., region].mean(dim=-1)


def lagged_correlations(video_signal: Tensor, audio_signal: Tensor, max_lag: int) -> tuple[Tensor, Tensor]:
    """Pearson correlation of ``video[t + k]`` with ``audio[t]`` over the overlap, for k in -max_lag..max_lag.

    Returns (lags [2L+1], correlations [2L+1]); a lag whose overlap is shorter than 3 frames or has a
    constant signal gets correlation 0.
    """
    n = min(video_signal.shape[0], audio_signal.shape[0])
    v, a = video_signal[:n].double(), audio_signal[:n].double()
    lags = torch.arange(-max_lag, max_lag + 1)
    out = torch.zeros(lags.shape[0], dtype=torch.float64)
    for i, k in enumerate(lags.tolist()):
        vs = v[max(k, 0) : n + min(k, 0)]
        au = a[max(-k, 0) : n - max(k, 0)]
        if vs.shape[0] < 3:
            continue
        vc, ac = vs - vs.mean(), au - au.mean()
        denom = torch.sqrt((vc * vc).sum() * (ac * ac).sum())
        if denom > 1e-12:
            out[i] = (vc * ac).sum() / denom
    return lags, out.float()


def correlation_near(result: LipSyncResult, lag: int = 0, window: int = 1) -> float:
    """The highest correlation at lags within ``window`` frames of ``lag`` (the "in sync" band)."""
    near = (result.lags - lag).abs() <= window
    if not bool(near.any()):
        raise ValueError(f"lag {lag} +- {window} is outside the measured lags {int(result.lags[0])}.."
                         f"{int(result.lags[-1])}")
    return float(result.correlations[near].max())


def lip_sync(
    frames: Tensor,  # [T, 3, H, W] uint8 or float in [-1, 1]
    audio: Tensor,  # [S] mono
    sample_rate: int,
    fps: float,
    max_lag: int = DEFAULT_MAX_LAG,
    region: Tensor | None = None,  # [H, W] bool: where the mouth is (None: a centred portrait's lower face)
) -> LipSyncResult:
    """Best lag, peak correlation and confidence of mouth opening against the audio envelope."""
    opening = measure_mouth_opening(frames, region)
    envelope = frame_rms(audio, sample_rate, fps, opening.shape[0])
    lags, corr = lagged_correlations(opening, envelope, max_lag)
    best = int(torch.argmax(corr))
    peak = float(corr[best])
    median = float(corr.median())
    return LipSyncResult(
        best_lag=int(lags[best]),
        peak_correlation=peak,
        median_correlation=median,
        confidence=peak - median,
        lags=lags,
        correlations=corr,
        # centred on one frame first, so a still mouth gives exactly 0 (a float32 mean of equal values need not)
        opening_std=float((opening - opening[0]).std()) if opening.numel() > 1 else 0.0,
    )
