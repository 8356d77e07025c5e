import pytest
import torch
from torch import nn

from talkgen_core.models.dit import build_dit
from talkgen_core.train.batches import sample_dit_batch
from talkgen_core.train.objective import flow_matching_loss, loss_weights, noise_fractions


class RecordingModel(nn.Module):
    """Stands in for the DiT: records its inputs and returns zeros."""

    def __init__(self, text_dim: int) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"text_dim": text_dim})()
        self.calls: list[dict] = []

    def forward(self, x, t, context, cond, audio=None, speaker_masks=None):
        self.calls.append({"x": x.clone(), "t": t.clone(), "context": context, "audio": audio})
        return torch.zeros_like(x)


def _kwargs(**changes):
    base = {"shift": 7.0, "audio_dropout": 0.0, "face_weight": 1.0, "mouth_weight": 4.0}
    base.update(changes)
    return base


def test_noise_fractions_are_shifted_towards_noise():
    s = noise_fractions(4000, 7.0, torch.Generator().manual_seed(0))
    assert 0.0 < s.min().item() and s.max().item() < 1.0
    assert s.median().item() == pytest.approx(7 * 0.5 / (1 + 6 * 0.5), abs=0.03)
    plain = noise_fractions(4000, 1.0, torch.Generator().manual_seed(0))
    assert plain.median().item() == pytest.approx(0.5, abs=0.03)


def test_context_latents_stay_clean_and_out_of_the_loss(latent_bank, smoke_config):
    batch = sample_dit_batch(latent_bank, smoke_config, 2, torch.Generator().manual_seed(1))
    model = RecordingModel(16)
    flow_matching_loss(model, batch, torch.Generator().manual_seed(2), **_kwargs())
    call = model.calls[0]
    clean = batch.clean.expand_as(batch.x0)
    assert torch.equal(call["x"][clean], batch.x0[clean])
    assert not torch.allclose(call["x"][~clean], batch.x0[~clean])
    assert call["t"].min().item() > 0.0 and call["t"].max().item() < 1000.0
    assert call["context"].abs().sum().item() == 0.0  # the demo has no text encoder: zero text states
    weights = loss_weights(batch, 1.0, 4.0)
    assert weights[batch.clean.expand_as(weights)].abs().sum().item() == 0.0
    assert weights[~batch.clean.expand_as(weights)].min().item() >= 1.0


def test_interpolation_matches_the_sampler_convention(latent_bank, smoke_config):
    batch = sample_dit_batch(latent_bank, smoke_config, 1, torch.Generator().manual_seed(4))
    model = RecordingModel(16)
    gen = torch.Generator().manual_seed(5)
    result = flow_matching_loss(model, batch, gen, **_kwargs())
    # Replay the same draws: noise first, then the noise fractions.
    replay = torch.Generator().manual_seed(5)
    noise = torch.randn(batch.x0.shape, generator=replay)
    s = noise_fractions(batch.x0.shape[0], 7.0, replay).view(-1, 1, 1, 1, 1)
    expected = (1 - s) * batch.x0 + s * noise
    free = ~batch.clean.expand_as(batch.x0)
    assert torch.allclose(model.calls[0]["x"][free], expected[free], atol=1e-6)
    assert torch.allclose(model.calls[0]["t"], s.flatten() * 1000.0)
    # A zero prediction's error is the target velocity itself: noise - x0.
    assert result.plain_mse.item() == pytest.approx((noise - batch.x0)[free].pow(2).mean().item(), rel=1e-5)


def test_audio_dropout_zeroes_the_audio(latent_bank, smoke_config):
    batch = sample_dit_batch(latent_bank, smoke_config, 1, torch.Generator().manual_seed(6))
    model = RecordingModel(16)
    flow_matching_loss(model, batch, torch.Generator().manual_seed(0), **_kwargs(audio_dropout=1.0))
    flow_matching_loss(model, batch, torch.Generator().manual_seed(0), **_kwargs(audio_dropout=0.0))
    assert model.calls[0]["audio"].abs().sum().item() == 0.0
    assert torch.equal(model.calls[1]["audio"], batch.audio)


def test_few_dit_steps_lower_the_loss(latent_bank, smoke_config):
    dit = build_dit(smoke_config.dit, seed=0)
    fixed = sample_dit_batch(latent_bank, smoke_config, 2, torch.Generator().manual_seed(100))

    def fixed_loss() -> float:
        with torch.no_grad():
            return flow_matching_loss(dit, fixed, torch.Generator().manual_seed(101), **_kwargs()).loss.item()

    start = fixed_loss()
    opt = torch.optim.AdamW(dit.parameters(), lr=1e-3)
    for step in range(25):
        gen = torch.Generator().manual_seed(step)
        batch = sample_dit_batch(latent_bank, smoke_config, 2, gen)
        loss = flow_matching_loss(dit, batch, gen, **_kwargs(audio_dropout=0.15)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = fixed_loss()
    assert end < 0.8 * start, (start, end)
