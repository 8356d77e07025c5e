"""``refiner``: a source video refined chunk by chunk by an embedded refiner model (InfinityHuman's refiner).

Not a strategy users pick for a DiT: the refiner route (:mod:`talkgen_core.refine`) chooses it with its own model,
which provides ``chunk_condition(vae, source, prefix, noise_level, generator)`` and ``prefixed_audio(audio)``
(:class:`talkgen_core.refine.embedded.EmbeddedRefiner`). Each chunk is one sequence ``[prefix | chunk latents]``:
the prefix is the reference's clean latent (the identity anchor every chunk attends to), and the chunk's leading
latents are pinned as in the InfiniteTalk chain (chunk 0: the reference's latent; later chunks: the previous
chunk's clean tail). The source frames of the chunk's window (the low-resolution video, seen at the output size)
become the degraded condition; the chunk's noise and the condition's noise come from ``(seed, chunk)`` only, so a
resume draws them again. The saved latents leave the prefix out, so decoding and the job folder are the chain's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..chunks import ChunkSpec, latent_frames
from ..jobdir import chunk_seed
from .base import ChainedStrategy, solve_pinned

PREFIX = "refiner_prefix"  # StreamState.strategy_state key: (reference [3, H, W], its latent [1, z, 1, h, w])


@dataclass(frozen=True)
class RefinerParams:
    condition_noise: float = 0.2  # noise level of the degraded low-resolution latents (the refiner's alpha)
    landmarks: str = "net"  # the landmark detector the pose comes from (talkgen_core.refine.detectors)

    def __post_init__(self) -> None:
        if isinstance(self.condition_noise, bool) or not isinstance(self.condition_noise, (int, float)) \
                or not 0.0 <= float(self.condition_noise) < 1.0:
            raise ValueError(f"condition_noise must be a number in [0, 1), got {self.condition_noise!r}")
        if not isinstance(self.landmarks, str) or not self.landmarks:
            raise ValueError(f"landmarks must name a landmark detector, got {self.landmarks!r}")


class RefinerChain(ChainedStrategy):
    name = "refiner"
    Params = RefinerParams
    needs_source_frames = True

    @classmethod
    def check_settings(cls, settings) -> None:
        if settings.end_keyframe:
            raise ValueError("end_keyframe is the infinitetalk strategy's rigid baseline; the refiner has none")
        if settings.sdedit_strength < 1.0:
            raise ValueError("the refiner starts from noise (its condition is the source video); leave "
                             "sdedit_strength at 1")
        if settings.context_mode != "latent":
            raise ValueError("the refiner carries its context as clean latents; use context_mode 'latent'")

    @staticmethod
    def _prefix(sampler, reference: torch.Tensor, state) -> torch.Tensor:
        """The reference's clean latent ``[1, z, 1, h, w]``, encoded once per reference."""
        cached = state.strategy_state.get(PREFIX)
        if cached is not None and torch.equal(cached[0], reference):
            return cached[1].to(sampler.device)
        latent = sampler.vae.encode(reference.to(sampler.device)[None, :, None]).to(sampler.device, torch.float32)
        state.strategy_state[PREFIX] = (reference, latent.cpu())
        return latent

    def sample_chunk(self, sampler, chunk: ChunkSpec, state, on_step=None, check=None) -> torch.Tensor:
        refiner = sampler.dit
        if not hasattr(refiner, "chunk_condition"):
            raise ValueError("the refiner strategy needs the embedded refiner model (talkgen_core.refine), not a DiT")
        reference = sampler.references.reference_for(chunk, sampler.fps)
        prefix = self._prefix(sampler, reference, state)
        source = sampler.references.source_frames_for(chunk, sampler.fps)
        if source is None:
            raise ValueError(f"the refiner needs the source video's frames for chunk {chunk.index}")
        _, z, _, h, w = prefix.shape
        generator = torch.Generator(device="cpu").manual_seed(chunk_seed(sampler.settings.seed, chunk.index))
        noise = torch.randn((1, z, latent_frames(chunk.length), h, w), generator=generator, dtype=torch.float32)
        cond = refiner.chunk_condition(sampler.vae, source.to(sampler.device), prefix,
                                       float(self.params.condition_noise), generator,
                                       self.params.landmarks)  # [1, C, 1 + T, h, w]
        audio = refiner.prefixed_audio(sampler.audio_for(chunk))
        guided = sampler.guided(sampler.chunk_conditioning(chunk, reference, cond, audio))
        clean = prefix if chunk.index == 0 else sampler.clean_context(chunk, cond, state)
        pinned = torch.cat([prefix, clean], dim=2)  # [1, z, 1 + k, h, w]
        x = torch.cat([pinned, noise.to(sampler.device)[:, :, clean.shape[2] :]], dim=2)
        return solve_pinned(sampler, chunk, guided, x, pinned, on_step, generator)[:, :, 1:].clone()
