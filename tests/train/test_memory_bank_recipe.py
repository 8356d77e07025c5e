"""The training recipe's memory-bank option: the sampler's layout (bank before the chunk), and the bank and context
noised to memory_sigma; off by default, where batches are the shipped recipe's exactly."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from talkgen_core.models import build_dit
from talkgen_core.sampling.chunks import latent_frames
from talkgen_core.train.batches import sample_dit_batch
from talkgen_core.train.objective import flow_matching_loss


def memory_batches(latent_bank, config, seeds=range(8)):
    return [sample_dit_batch(latent_bank, config, 2, torch.Generator().manual_seed(seed)) for seed in seeds]


def test_continuations_carry_the_bank_before_the_chunk_noised_to_sigma(latent_bank, smoke_config):
    config = replace(smoke_config, memory_latents=2, memory_sigma=0.25)
    t, context = latent_frames(config.chunk_frames), latent_frames(config.context_frames)
    kinds = set()
    for batch in memory_batches(latent_bank, config):
        pinned = batch.clean[:, 0, :, 0, 0]
        if batch.x0.shape[2] == t:  # a batch of first chunks: no bank, the shipped layout
            kinds.add("first")
            assert batch.memory_noise is None and pinned.sum(dim=1).tolist() == [1] * config.dit_batch
            continue
        kinds.add("continuation")
        assert batch.x0.shape[2] == 2 + t and batch.audio.shape[2] == 4 * 2 + config.chunk_frames
        assert pinned.sum(dim=1).tolist() == [2 + context] * config.dit_batch
        # entry 0 is the reference's own latent, under the mask, as the memory-bank sampler lays it out
        torch.testing.assert_close(batch.x0[:, :, 0], batch.cond[:, 4:, 0])
        assert torch.equal(batch.cond[:, :4, 0], torch.ones_like(batch.cond[:, :4, 0]))
        assert batch.cond[:, :4, 1:].abs().sum().item() == 0.0
        assert batch.audio[:, :, : 4 * 2].abs().sum().item() == 0.0  # null audio for the bank
        assert torch.equal(batch.memory_noise[:, 0, :, 0, 0], pinned.float() * 0.25)
        assert batch.region[:, :, :2].abs().sum().item() == 0.0
    assert kinds == {"first", "continuation"}


def test_the_loss_sees_the_context_noised_to_sigma(latent_bank, smoke_config):
    config = replace(smoke_config, memory_latents=2, memory_sigma=0.25)
    batch = next(b for b in memory_batches(latent_bank, config) if b.memory_noise is not None)
    dit = build_dit(config.dit, seed=0)
    seen = []
    forward = dit.forward
    dit.forward = lambda x, *args, **kwargs: (seen.append(x.clone()), forward(x, *args, **kwargs))[1]
    loss = flow_matching_loss(dit, batch, torch.Generator().manual_seed(3), shift=config.time_shift,
                              audio_dropout=0.0, face_weight=1.0, mouth_weight=4.0)
    assert torch.isfinite(loss.loss)
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(batch.x0.shape, generator=generator)
    pinned = batch.clean[0, 0, :, 0, 0]
    expected = 0.75 * batch.x0[:, :, pinned] + 0.25 * noise[:, :, pinned]
    torch.testing.assert_close(seen[0][:, :, pinned], expected)


def test_the_option_is_off_by_default_and_checked(latent_bank, smoke_config):
    assert smoke_config.memory_latents == 0 and smoke_config.memory_sigma == 0.0
    assert all(b.memory_noise is None for b in memory_batches(latent_bank, smoke_config, range(3)))
    with pytest.raises(ValueError, match="memory_sigma"):
        replace(smoke_config, memory_sigma=1.0)
