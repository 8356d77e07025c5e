"""Conditional flow matching for the DiT, with region weighting and modality dropout.

With noise fraction ``s`` in [0, 1] (DiT time ``t = 1000 s``): ``x_t = (1 - s) x0 + s * noise`` and the
target velocity is ``v = noise - x0`` (the sampler's convention). ``s`` is drawn as a uniform ``u`` warped by
the sampler's time shift, ``s = shift u / (1 + (shift - 1) u)``, so training spends its effort on the noise
levels the shifted demo grid actually visits.

Context latents (``batch.clean``) are set to their clean values in ``x_t`` (with the memory-bank recipe:
noised to ``batch.memory_noise``, as that sampler pins them) and left out of the loss, as the streaming
sampler pins them. The squared error is weighted per latent cell by
``1 + face_weight * face + mouth_weight * mouth`` (coverage from the renderer's ground-truth masks, pooled to
latent resolution): mouth and face up-weighted as in SkyReels-Audio / MagicInfinite.

Modality dropout: a share of samples gets all-zero audio windows (the sampler's "null audio"), which is what
audio guidance contrasts with. The demo has no text or CLIP-image encoder: the sampler passes zero text
states and no CLIP features for both the conditional and unconditional branch, so training does the same
(text dropout would be a no-op).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from talkgen_core.sampling.schedules import NUM_TRAIN_TIMESTEPS, shift_fraction
from talkgen_core.train.batches import DiTBatch


@dataclass(frozen=True)
class FlowLoss:
    loss: Tensor  # scalar, region-weighted mean squared velocity error over generated latents
    plain_mse: Tensor  # scalar, unweighted, same latents (for logging)


def noise_fractions(batch_size: int, shift: float, generator: torch.Generator) -> Tensor:
    """[B] noise fractions s in (0, 1), shifted like the sampling grid."""
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64).clamp(1e-4, 1.0 - 1e-4)
    return shift_fraction(u, shift).float()


def loss_weights(batch: DiTBatch, face_weight: float, mouth_weight: float) -> Tensor:
    """[B, 1, T, h, w]: region weights, zero on the pinned context latents."""
    return region_loss_weights(batch.region, batch.clean, face_weight, mouth_weight)


def region_loss_weights(region: Tensor, clean: Tensor, face_weight: float, mouth_weight: float) -> Tensor:
    """region [B, 2, T, h, w] (face, mouth coverage), clean [B, 1, T, 1, 1] -> weights [B, 1, T, h, w]."""
    weights = 1.0 + face_weight * region[:, :1] + mouth_weight * region[:, 1:]
    return weights * (~clean).float()


def flow_matching_loss(
    dit: nn.Module,
    batch: DiTBatch,
    generator: torch.Generator,
    *,
    shift: float,
    audio_dropout: float,
    face_weight: float,
    mouth_weight: float,
) -> FlowLoss:
    x0 = batch.x0
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator)
    s = noise_fractions(b, shift, generator)
    s_ = s.view(b, 1, 1, 1, 1)
    context = x0 if batch.memory_noise is None else (1.0 - batch.memory_noise) * x0 + batch.memory_noise * noise
    xt = torch.where(batch.clean, context, (1.0 - s_) * x0 + s_ * noise)
    keep_audio = (torch.rand(b, generator=generator) >= audio_dropout).float().view(b, 1, 1, 1, 1, 1)
    text = torch.zeros(b, 1, dit.config.text_dim)
    v = dit(xt, s * NUM_TRAIN_TIMESTEPS, text, batch.cond, audio=batch.audio * keep_audio,
            speaker_masks=batch.speaker_masks)
    err = (v - (noise - x0)).pow(2)
    weights = loss_weights(batch, face_weight, mouth_weight)
    generated = (~batch.clean).float()
    return FlowLoss(
        loss=(err * weights).sum() / (weights.sum() * x0.shape[1]).clamp_min(1e-8),
        plain_mse=(err * generated).sum() / (generated.expand_as(weights).sum() * x0.shape[1]).clamp_min(1e-8),
    )
