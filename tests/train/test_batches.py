import pytest
import torch

from talkgen_core.sampling.chunks import latent_frames
from talkgen_core.train.batches import latent_region_coverage, sample_dit_batch
from talkgen_core.train.latents import reference_positions


def test_latent_bank_layout(latent_bank, smoke_config, smoke_models):
    c = smoke_config
    vae, wav2vec2 = smoke_models
    n, h = c.num_clips, c.size // 8
    t = latent_frames(c.chunk_frames)
    assert latent_bank.stream.shape == (n, vae.z_dim, latent_frames(c.clip_frames), h, h)
    assert latent_bank.start_frames == reference_positions(c)
    r = len(latent_bank.start_frames)
    assert latent_bank.start_streams.shape == (n, r, vae.z_dim, t, h, h)
    assert latent_bank.conditions.shape == (n, r + 1, vae.z_dim, t, h, h)
    assert latent_bank.audio_features.shape == (n, 1, c.clip_frames, wav2vec2.config.num_layers, wav2vec2.config.hidden_size)
    assert latent_bank.face.shape == latent_bank.mouth.shape == (n, c.clip_frames, h, h)


def test_reference_positions_cover_all_chunk_starts(smoke_config):
    positions = reference_positions(smoke_config)
    assert positions[0] == 0
    assert positions[-1] == smoke_config.clip_frames - smoke_config.chunk_frames


def test_first_chunk_context_is_the_reference_latent(latent_bank):
    # A fresh stream's latent 0 encodes its first frame alone, exactly like the condition's latent 0.
    assert torch.allclose(latent_bank.start_streams[:, :, :, 0], latent_bank.conditions[:, :-1, :, 0], atol=1e-5)


@pytest.mark.parametrize("stage", [1, 2])
def test_batch_shapes_and_context(latent_bank, smoke_config, smoke_models, stage):
    c = smoke_config
    vae, wav2vec2 = smoke_models
    frames = c.stage1_frames if stage == 1 else c.chunk_frames
    t = latent_frames(frames)
    batch = sample_dit_batch(latent_bank, c, stage, torch.Generator().manual_seed(7))
    b, h = c.dit_batch, c.size // 8
    assert batch.x0.shape == (b, vae.z_dim, t, h, h)
    assert batch.cond.shape == (b, 4 + vae.z_dim, t, h, h)
    assert torch.equal(batch.cond[:, :4, 0], torch.ones(b, 4, h, h))
    assert batch.cond[:, :4, 1:].abs().sum().item() == 0.0
    assert batch.audio.shape == (b, 1, frames, 5, wav2vec2.config.num_layers, wav2vec2.config.hidden_size)
    assert batch.clean.shape == (b, 1, t, 1, 1)
    assert batch.region.shape == (b, 2, t, h, h)
    context = batch.clean[:, 0, :, 0, 0].sum(dim=1)
    allowed = {1} if stage == 1 else {1, latent_frames(c.context_frames)}
    assert set(context.tolist()) <= allowed
    assert bool(batch.clean[:, :, 0].all())  # latent 0 is always pinned


def test_stage2_mixes_continuations_and_first_chunks(latent_bank, smoke_config):
    counts = set()
    for seed in range(12):
        batch = sample_dit_batch(latent_bank, smoke_config, 2, torch.Generator().manual_seed(seed))
        counts.update(batch.clean[:, 0, :, 0, 0].sum(dim=1).tolist())
    assert counts == {1, latent_frames(smoke_config.context_frames)}


def test_region_coverage_follows_the_causal_latent_grouping():
    coverage = torch.zeros(13, 2, 2)
    coverage[0] = 0.1
    coverage[3] = 0.7  # frame 3 lies in latent 1 (frames 1-4) of a chunk starting at 0
    coverage[9] = 0.4  # latent 3 (frames 9-12)
    out = latent_region_coverage(coverage, 0, 13)
    assert out.shape == (4, 2, 2)
    assert out[:, 0, 0].tolist() == pytest.approx([0.1, 0.7, 0.0, 0.4])
    shifted = latent_region_coverage(coverage, 4, 9)  # frames 4..12: latent 0 = frame 4
    assert shifted[:, 0, 0].tolist() == pytest.approx([0.0, 0.0, 0.4])


def test_batches_are_deterministic_per_generator(latent_bank, smoke_config):
    a = sample_dit_batch(latent_bank, smoke_config, 2, torch.Generator().manual_seed(3))
    b = sample_dit_batch(latent_bank, smoke_config, 2, torch.Generator().manual_seed(3))
    assert torch.equal(a.x0, b.x0) and torch.equal(a.cond, b.cond) and torch.equal(a.audio, b.audio)
