"""``memory-bank``: the InfiniteTalk chain plus a bank of earlier clean latents as extra context (LetsTalk).

The bank rule (``bank_size`` entries at most, refreshed every ``bank_every`` chunks):

* entry 0 is chunk 0's latent 0, the first reference's own latent; it stays for the whole video (the
  identity anchor);
* after every ``bank_every``-th chunk (chunks ``bank_every - 1``, ``2 bank_every - 1``, ...) that chunk's last
  latent frame joins the bank; once the bank holds more than ``bank_size`` entries, the oldest of these
  refreshed entries leaves (entry 0 never does);
* ``bank_size = 0`` turns the bank off.

Chunk ``k >= 1`` is sampled as one sequence ``[bank (M) | carried context | new latents]``: the bank entries,
oldest first, are extra latent frames before the chunk. The first-frame mask and the reference latent stay
at sequence position 0 (where entry 0 sits, as in chunk 0); the other bank positions take the chunk's grey
condition latent with mask 0, and their audio is the null (all-zero) audio. Noise regularisation: the bank
and the carried context are pinned at ``(1 - memory_sigma) clean + memory_sigma noise`` for the whole solve,
the noise drawn from the chunk's own generator after its initial noise (so a resume draws it again), and the
model is asked at the solver's time as usual; the chunk's saved latents hold the clean context, not the noised
one. Chunk 0 has no bank yet and is sampled exactly as ``infinitetalk``'s; with ``bank_size = 0`` and
``memory_sigma = 0`` the strategy is ``infinitetalk`` exactly.

The training recipe offers the same memory and noise (``TrainConfig.memory_latents`` / ``memory_sigma``), so
the demo model can be trained for it; the shipped demo weights were trained without.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..chunks import ChunkSpec
from .base import ChainedStrategy, solve_pinned
from .infinitetalk import sample_with_context

BANK = "bank"  # key of the bank (a list of [1, z, 1, h, w] clean latents) in StreamState.strategy_state


@dataclass(frozen=True)
class MemoryBankParams:
    bank_size: int = 3  # entries at most, entry 0 (the first reference's latent) included; 0 = no bank
    bank_every: int = 2  # a finished chunk's last latent joins the bank every this many chunks
    memory_sigma: float = 0.1  # noise level of the bank and the carried context while sampling, in [0, 1)

    def __post_init__(self) -> None:
        if isinstance(self.bank_size, bool) or not isinstance(self.bank_size, int) or self.bank_size < 0:
            raise ValueError(f"bank_size must be a whole number >= 0, got {self.bank_size!r}")
        if isinstance(self.bank_every, bool) or not isinstance(self.bank_every, int) or self.bank_every < 1:
            raise ValueError(f"bank_every must be a whole number >= 1, got {self.bank_every!r}")
        if not isinstance(self.memory_sigma, (int, float)) or not 0.0 <= float(self.memory_sigma) < 1.0:
            raise ValueError(f"memory_sigma must be a number in [0, 1), got {self.memory_sigma!r}")


def updated_bank(bank: list[torch.Tensor], chunk_index: int, latents: torch.Tensor,
                 params: MemoryBankParams) -> list[torch.Tensor]:
    """The bank after chunk ``chunk_index`` finished with clean latents ``[1, z, T, h, w]`` (the rule above)."""
    if params.bank_size == 0:
        return []
    bank = list(bank)
    if chunk_index == 0:
        bank = [latents[:, :, :1].detach().clone()]
    if (chunk_index + 1) % params.bank_every == 0 and params.bank_size > 1:
        bank.append(latents[:, :, -1:].detach().clone())
        if len(bank) > params.bank_size:
            del bank[1]
    return bank


def with_memory(condition: torch.Tensor, audio: torch.Tensor, memory: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunk's condition ``[1, 4 + z, T, h, w]`` and audio ``[1, P, F, 5, L, D]`` for ``memory`` extra leading
    latent frames: mask and reference latent stay at position 0, the memory positions take the grey latent of
    position 1 (mask 0), and ``4 memory`` null audio frames go in front (so every later latent keeps its frames)."""
    if memory == 0:
        return condition, audio
    grey = condition[:, :, 1:2].expand(-1, -1, memory, -1, -1)
    condition = torch.cat([condition[:, :, :1], grey, condition[:, :, 1:]], dim=2)
    null = torch.zeros_like(audio[:, :, :1]).expand(-1, -1, 4 * memory, -1, -1, -1)
    return condition, torch.cat([null, audio], dim=2)


class MemoryBank(ChainedStrategy):
    name = "memory-bank"
    Params = MemoryBankParams

    @classmethod
    def check_settings(cls, settings) -> None:
        if settings.end_keyframe:
            raise ValueError("end_keyframe is the infinitetalk strategy's rigid baseline; memory-bank has none")

    def sample_chunk(self, sampler, chunk: ChunkSpec, state, on_step=None, check=None) -> torch.Tensor:
        if chunk.index == 0:
            return sample_with_context(sampler, chunk, state, on_step, check)
        bank = state.strategy_state.get(BANK, [])
        memory = len(bank)
        reference = sampler.references.reference_for(chunk, sampler.fps)
        condition = sampler.condition_for(chunk, reference, state, check)
        clean = sampler.clean_context(chunk, condition, state)
        long_condition, audio = with_memory(condition, sampler.audio_for(chunk), memory)
        guided = sampler.guided(sampler.chunk_conditioning(chunk, reference, long_condition, audio))
        x, generator = sampler.initial_latents(chunk, condition)
        pinned_clean = torch.cat([*(b.to(x) for b in bank), clean], dim=2)  # [1, z, M + k, h, w]
        sigma = float(self.params.memory_sigma)
        pinned = pinned_clean
        if sigma > 0:
            noise = torch.randn(pinned_clean.shape, generator=generator, dtype=torch.float32).to(x)
            pinned = (1.0 - sigma) * pinned_clean + sigma * noise
        x = torch.cat([pinned, x[:, :, clean.shape[2] :]], dim=2)  # [1, z, M + T, h, w]
        x = solve_pinned(sampler, chunk, guided, x, pinned, on_step, generator)
        latents = x[:, :, memory:].clone()
        latents[:, :, : clean.shape[2]] = clean  # the saved chunk holds the clean context
        return latents

    def finish(self, sampler, chunk: ChunkSpec, latents: torch.Tensor, state, sink, check) -> None:
        sampler.finish_chunk(chunk, latents, state, sink, check)
        state.strategy_state[BANK] = updated_bank(state.strategy_state.get(BANK, []), chunk.index,
                                                  latents, self.params)

