"""Guidance: pass counts per mode (batched and not), the official formulas, scale 1 == conditional, APG."""

from __future__ import annotations

import pytest
import torch

from sampling.streaming_fakes import Z, FakeDiT
from talkgen_core.sampling.guidance import (
    APGConfig, GuidanceConfig, GuidanceMode, GuidedVelocity, project_guidance,
)
from talkgen_core.sampling.schedules import flow_timesteps
from talkgen_core.sampling.solvers import euler
from talkgen_core.sampling.wrappers import Branch, ChunkConditioning, DiTVelocity

T, H, W = 3, 2, 2
F_VIDEO = 4 * (T - 1) + 1


def conditioning(speakers: int = 1, seed: int = 0) -> ChunkConditioning:
    g = torch.Generator().manual_seed(seed)
    return ChunkConditioning(
        cond=torch.randn(1, 4 + Z, T, H, W, generator=g),
        context=torch.randn(1, 3, 8, generator=g),
        negative_context=torch.randn(1, 5, 8, generator=g),
        audio=torch.randn(1, speakers, F_VIDEO, 5, 2, 3, generator=g),
        speaker_masks=torch.ones(speakers, 4, 4) if speakers > 1 else None,
    )


def x_state(seed: int = 1) -> torch.Tensor:
    return torch.randn(1, Z, T, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "config, passes",
    [
        (GuidanceConfig(text_scale=5.0, audio_scale=4.0), 3),
        (GuidanceConfig(text_scale=1.0, audio_scale=4.0), 2),
        (GuidanceConfig(text_scale=1.0, audio_scale=1.0), 1),
        (GuidanceConfig(text_scale=1.0, audio_scale=1.0, mode=GuidanceMode.TEXT_AUDIO), 3),
    ],
)
@pytest.mark.parametrize("batch", [True, False])
def test_model_calls_per_mode(config, passes, batch):
    dit = FakeDiT()
    config = GuidanceConfig(**{**config.__dict__, "batch_passes": batch})
    guided = GuidedVelocity(DiTVelocity(dit, conditioning()), config)
    assert guided.passes == passes
    euler(guided, x_state(), flow_timesteps(4))
    assert dit.calls == 4 * (1 if batch else passes)
    assert dit.batch_sizes == ([passes] * 4 if batch else [1] * (4 * passes))


def test_two_speakers_batch_the_null_audio_separately():
    dit = FakeDiT()
    guided = GuidedVelocity(DiTVelocity(dit, conditioning(speakers=2)), GuidanceConfig(5.0, 4.0))
    guided(x_state(), 500.0)
    assert dit.calls == 2 and sorted(dit.batch_sizes) == [1, 2]  # cond + drop-text, then uncond (1 zero speaker)


def test_batched_equals_separate_passes():
    cond = conditioning()
    batched = GuidedVelocity(DiTVelocity(FakeDiT(), cond), GuidanceConfig(5.0, 4.0, batch_passes=True))
    single = GuidedVelocity(DiTVelocity(FakeDiT(), cond), GuidanceConfig(5.0, 4.0, batch_passes=False))
    v_batched, v_single = batched(x_state(), 700.0), single(x_state(), 700.0)
    torch.testing.assert_close(v_batched, v_single)


class FixedBranches:
    """A branch model returning fixed, distinct velocities per branch."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(3)
        self.v = {b: torch.randn(1, 2, 3, generator=g) for b in Branch}

    def evaluate(self, x, t, branches, batch=True):
        return [self.v[b] for b in branches]


def test_official_formulas():
    m = FixedBranches()
    v = m.v
    got3 = GuidedVelocity(m, GuidanceConfig(5.0, 4.0))(torch.zeros(1), 1.0)
    cond, drop_text, uncond = v[Branch.COND], v[Branch.DROP_TEXT], v[Branch.UNCOND]
    want3 = uncond + 5.0 * (cond - drop_text) + 4.0 * (drop_text - uncond)
    torch.testing.assert_close(got3, want3)
    got2 = GuidedVelocity(m, GuidanceConfig(1.0, 3.0))(torch.zeros(1), 1.0)
    torch.testing.assert_close(got2, v[Branch.DROP_AUDIO] + 3.0 * (v[Branch.COND] - v[Branch.DROP_AUDIO]))


@pytest.mark.parametrize("mode", list(GuidanceMode))
@pytest.mark.parametrize("apg", [None, APGConfig()])
def test_scale_one_is_the_conditional_output(mode, apg):
    dit_velocity = DiTVelocity(FakeDiT(), conditioning())
    x = x_state()
    cond_only = dit_velocity.evaluate(x, 600.0, [Branch.COND])[0]
    guided = GuidedVelocity(dit_velocity, GuidanceConfig(1.0, 1.0, mode=mode, apg=apg))(x, 600.0)
    torch.testing.assert_close(guided, cond_only)


def test_apg_clips_projects_and_resets_per_chunk():
    g = torch.Generator().manual_seed(4)
    diff, v_cond = 100 * torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    out = project_guidance(diff, v_cond, APGConfig(momentum=0.0, norm_threshold=55.0, eta=0.0))
    assert torch.all(out.flatten(1).norm(dim=1) <= 55.0 + 1e-4)
    torch.testing.assert_close((out * v_cond).sum(dim=(1, 2)), torch.zeros(2, dtype=out.dtype), atol=1e-4, rtol=0)
    m = FixedBranches()
    config = GuidanceConfig(5.0, 4.0, apg=APGConfig())
    first = GuidedVelocity(m, config)
    a, b = first(torch.zeros(1), 1.0), first(torch.zeros(1), 1.0)
    assert not torch.allclose(a, b)  # the momentum buffer carries between steps
    torch.testing.assert_close(GuidedVelocity(m, config)(torch.zeros(1), 1.0), a)  # a new chunk starts fresh
