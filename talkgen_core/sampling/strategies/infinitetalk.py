"""``infinitetalk`` (the default): chunks chained through a clean context tail, as the InfiniteTalk paper and code.

Each chunk pins its first latent frames to clean values, the reference's own latent in chunk 0 and the
previous chunk's last latents (or, in pixel mode, their decode -> encode round trip) later, and optionally its
last latent to the reference (``end_keyframe``, the rigid baseline). See :mod:`talkgen_core.sampling.streaming`.
"""

from __future__ import annotations

import torch

from ..chunks import ChunkSpec
from ..streaming import MASK_CHANNELS
from ..wrappers import pin_leading_frames
from .base import ChainedStrategy


def sample_with_context(sampler, chunk: ChunkSpec, state, on_step=None, check=None) -> torch.Tensor:
    """One chunk's latents ``[1, z, T, h, w]``, its leading latents pinned to the clean context."""
    reference = sampler.references.reference_for(chunk, sampler.fps)
    condition = sampler.condition_for(chunk, reference, state, check)
    clean = sampler.clean_context(chunk, condition, state)
    guided = sampler.guided(sampler.chunk_conditioning(chunk, reference, condition))
    end = condition[:, MASK_CHANNELS:, :1] if sampler.settings.end_keyframe else None  # the reference's latent
    model_fn = pin_leading_frames(guided, clean, end)
    x, generator = sampler.initial_latents(chunk, condition)
    k = clean.shape[2]
    x[:, :, :k] = clean
    if end is not None:
        x[:, :, -1:] = end

    def after_step(info) -> None:
        info.x[:, :, :k] = clean  # exact clean context after every step
        if end is not None:
            info.x[:, :, -1:] = end
        sampler.check_finite(chunk, info)
        if on_step is not None:
            on_step(info)

    return sampler.solver(model_fn, x, sampler.timesteps, callback=after_step, generator=generator)


class InfiniteTalk(ChainedStrategy):
    name = "infinitetalk"

    def sample_chunk(self, sampler, chunk: ChunkSpec, state, on_step=None, check=None) -> torch.Tensor:
        return sample_with_context(sampler, chunk, state, on_step, check)
