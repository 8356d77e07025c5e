"""Classifier-free guidance for text + audio, as a wrapper around a :class:`~.wrappers.BranchModel`.

Official InfiniteTalk formulas (velocities ``v_*`` of the branches named in :class:`~.wrappers.Branch`):

* 3 passes (text scale != 1): ``v = v_uncond + g_text (v_cond - v_droptext) + g_audio (v_droptext - v_uncond)``
* 2 passes (text scale == 1): ``v = v_dropaudio + g_audio (v_cond - v_dropaudio)``
* 1 pass (distilled models, both scales 1): ``v = v_cond``

Adaptive projected guidance (APG, Sadat et al. 2024), the official option, rewrites each guidance
difference ``d`` before it is added to ``v_cond`` with weight ``g - 1``: a momentum buffer (``d <- d + m d_prev``
with m = -0.75), an L2 clip of ``d`` to 55 over all but the batch axis, and removal of the component parallel
to ``v_cond`` (``eta`` keeps that much of it). A :class:`GuidedVelocity` is built per chunk, so the buffers
start empty for every chunk, as officially.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

import torch

from .wrappers import Branch, BranchModel


class GuidanceMode(str, enum.Enum):
    TEXT_AUDIO = "text_audio"  # 3 passes: cond, drop-text, uncond
    AUDIO = "audio"  # 2 passes: cond, drop-audio
    NONE = "none"  # 1 pass: cond


PASSES: dict[GuidanceMode, tuple[Branch, ...]] = {
    GuidanceMode.TEXT_AUDIO: (Branch.COND, Branch.DROP_TEXT, Branch.UNCOND),
    GuidanceMode.AUDIO: (Branch.COND, Branch.DROP_AUDIO),
    GuidanceMode.NONE: (Branch.COND,),
}


@dataclass(frozen=True)
class APGConfig:
    momentum: float = -0.75
    norm_threshold: float = 55.0  # <= 0 disables the clip
    eta: float = 0.0  # share of the component parallel to v_cond that is kept


@dataclass(frozen=True)
class GuidanceConfig:
    text_scale: float = 5.0
    audio_scale: float = 4.0
    mode: Optional[GuidanceMode] = None  # None: chosen from the scales (see resolved_mode)
    batch_passes: bool = True  # stack the passes into one forward where shapes allow
    apg: Optional[APGConfig] = None

    def resolved_mode(self) -> GuidanceMode:
        """The explicit mode, else 3 passes when text_scale != 1, 2 when audio_scale != 1, else 1."""
        if self.mode is not None:
            return GuidanceMode(self.mode)
        if self.text_scale != 1.0:
            return GuidanceMode.TEXT_AUDIO
        if self.audio_scale != 1.0:
            return GuidanceMode.AUDIO
        return GuidanceMode.NONE


class _MomentumBuffer:
    def __init__(self, momentum: float) -> None:
        self.momentum = momentum
        self.average: Optional[torch.Tensor] = None

    def update(self, value: torch.Tensor) -> torch.Tensor:
        self.average = value if self.average is None else value + self.momentum * self.average
        return self.average


def project_guidance(diff: torch.Tensor, v_cond: torch.Tensor, config: APGConfig,
                     buffer: Optional[_MomentumBuffer] = None) -> torch.Tensor:
    """APG on one guidance difference. diff, v_cond: ``[B, ...]``; norms are taken over all but B."""
    if buffer is not None:
        diff = buffer.update(diff)
    dims = tuple(range(1, diff.ndim))
    if config.norm_threshold > 0:
        norm = diff.norm(p=2, dim=dims, keepdim=True)
        diff = diff * torch.clamp(config.norm_threshold / norm.clamp_min(1e-12), max=1.0)
    d, c = diff.double(), v_cond.double()
    unit = c / c.norm(p=2, dim=dims, keepdim=True).clamp_min(1e-12)
    parallel = (d * unit).sum(dim=dims, keepdim=True) * unit
    return ((d - parallel) + config.eta * parallel).to(diff.dtype)


class GuidedVelocity:
    """``model_fn(x, t)`` with guidance applied; build one per chunk (APG state lives here)."""

    def __init__(self, model: BranchModel, config: GuidanceConfig) -> None:
        self.model = model
        self.config = config
        self.mode = config.resolved_mode()
        apg = config.apg
        self._text_buffer = _MomentumBuffer(apg.momentum) if apg is not None and apg.momentum != 0 else None
        self._audio_buffer = _MomentumBuffer(apg.momentum) if apg is not None and apg.momentum != 0 else None

    @property
    def passes(self) -> int:
        return len(PASSES[self.mode])

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        v = self.model.evaluate(x, t, PASSES[self.mode], batch=self.config.batch_passes)
        g_text, g_audio, apg = self.config.text_scale, self.config.audio_scale, self.config.apg
        if self.mode is GuidanceMode.NONE:
            return v[0]
        if self.mode is GuidanceMode.AUDIO:
            cond, drop_audio = v
            if apg is None:
                return drop_audio + g_audio * (cond - drop_audio)
            return cond + (g_audio - 1.0) * project_guidance(cond - drop_audio, cond, apg, self._audio_buffer)
        cond, drop_text, uncond = v
        if apg is None:
            return uncond + g_text * (cond - drop_text) + g_audio * (drop_text - uncond)
        text_term = project_guidance(cond - drop_text, cond, apg, self._text_buffer)
        audio_term = project_guidance(drop_text - uncond, cond, apg, self._audio_buffer)
        return cond + (g_text - 1.0) * text_term + (g_audio - 1.0) * audio_term
