"""Step cache: skips follow the accumulated relative-L1 rule (TeaCache raw) or MagCache's accumulated ratio
error per guidance pass, never on a chunk's first or last step, and a skipped pass reuses its own residual."""

from __future__ import annotations

import pytest
import torch

from helpers.dit_inputs import dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.blocks import BlockInputs
from talkgen_core.models.runtime import RunStats, counted_forwards
from talkgen_core.models.step_cache import ChunkStepCache, StepCacheConfig, step_cache
from talkgen_core.sampling.guidance import GuidanceConfig, GuidedVelocity
from talkgen_core.sampling.schedules import flow_timesteps
from talkgen_core.sampling.solvers import euler
from talkgen_core.sampling.wrappers import Branch, ChunkConditioning, DiTVelocity

STEPS = 6


@pytest.fixture(scope="module")
def model():
    return build_dit("tiny", seed=5).eval().requires_grad_(False)


def conditioning(model) -> ChunkConditioning:
    i = dit_inputs(model.config, frames=3, size=4)
    return ChunkConditioning(cond=i["cond"], context=i["context"], audio=i["audio"])


def solve(model, threshold: float | None) -> tuple[torch.Tensor, RunStats, ChunkStepCache | None]:
    timesteps = flow_timesteps(STEPS, 5.0)
    config = None if threshold is None else StepCacheConfig.for_schedule(threshold, timesteps)
    stats = RunStats()
    noise = torch.randn(1, model.config.out_dim, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    with step_cache(model, config), counted_forwards(model, stats):
        velocity = DiTVelocity(model, conditioning(model))
        guided = GuidedVelocity(velocity, GuidanceConfig(text_scale=1.0, audio_scale=3.0))  # 2 passes
        x = euler(guided, noise, timesteps)
    return x, stats, velocity.step_cache


def test_a_huge_threshold_computes_only_the_first_and_last_step(model):
    _, stats, cache = solve(model, 1e9)
    assert stats.dit_forwards == 2 * 2  # 2 steps x 2 passes
    assert cache is not None and cache.skipped == (STEPS - 2) * 2
    assert set(cache.entries) == {Branch.COND, Branch.DROP_AUDIO}


def test_a_small_threshold_changes_nothing_and_a_middle_one_stays_close(model):
    plain, plain_stats, none = solve(model, None)
    assert none is None and plain_stats.dit_forwards == STEPS * 2
    tiny, tiny_stats, _ = solve(model, 1e-9)
    assert tiny_stats.dit_forwards == STEPS * 2 and torch.equal(tiny, plain)
    cached, stats, _ = solve(model, 0.3)
    assert 4 <= stats.dit_forwards < STEPS * 2
    assert (cached - plain).abs().mean() < 0.2 * plain.abs().mean()


def test_skips_reuse_each_passes_own_residual_and_accumulate_until_the_threshold():
    config = StepCacheConfig(0.25, protected_t=(1000.0, 10.0))
    cache = ChunkStepCache(config)
    dit = build_dit("tiny", seed=0).requires_grad_(False)
    c = dit.config
    inputs = BlockInputs(time_mod=torch.zeros(2, 6, c.dim), text=torch.zeros(2, 1, c.dim), image=None,
                         rope=torch.ones(4, c.head_dim // 2, dtype=torch.complex64), grid=(1, 2, 2), audio=None,
                         routing=None, compute_dtype=torch.float32)
    runs = []

    def run(h, _inputs):
        runs.append(h.clone())
        return h * 2 + torch.tensor([1.0, -1.0])[:, None, None]  # residual h + 1 / h - 1 per row

    passes = (Branch.COND, Branch.DROP_AUDIO)
    h = torch.full((2, 4, c.dim), 1.0)
    h[:, :, ::2] = 3.0
    assert torch.equal(cache.run_blocks(run, dit, passes, 1000.0, h, inputs), run(h, inputs))
    runs.clear()
    shifted = h.clone()
    shifted[:, :, 0] += 0.5  # a small change of the normalised input
    out = cache.run_blocks(run, dit, passes, 500.0, shifted, inputs)
    assert not runs  # skipped: each row gets its own residual from the computed step
    assert torch.equal(out, shifted + (h + torch.tensor([1.0, -1.0])[:, None, None]))
    assert 0 < cache.entries[Branch.COND].accumulated < 0.25 and cache.skipped == 2
    far = h.clone()
    far[:, :, :2] = -far[:, :, :2]
    cache.run_blocks(run, dit, passes, 400.0, far, inputs)
    assert len(runs) == 1 and cache.entries[Branch.COND].accumulated == 0.0  # over the threshold: computed
    runs.clear()
    cache.run_blocks(run, dit, passes, 10.0, far, inputs)
    assert len(runs) == 1  # the last step always computes, even unchanged
    runs.clear()
    cache.run_blocks(run, dit, passes, 700.0, far, inputs)
    assert len(runs) == 1 and cache.skipped == 2  # time went up: a new sweep, nothing reused


def test_magcache_skips_while_the_accumulated_ratio_error_stays_under_the_threshold():
    times = (1000.0, 800.0, 600.0, 400.0, 200.0, 10.0)
    ratios = {"COND": (1.0, 0.98, 0.97, 0.99, 0.5, 0.5), "DROP_AUDIO": (1.0, 0.99, 0.99, 0.99, 0.99, 0.5)}
    config = StepCacheConfig(0.1, protected_t=(1000.0, 10.0), times=times, magnitude_ratios=ratios, max_skips=2)
    cache = ChunkStepCache(config)
    dit = build_dit("tiny", seed=0).requires_grad_(False)
    inputs = BlockInputs(time_mod=torch.zeros(2, 6, dit.config.dim), text=torch.zeros(2, 1, dit.config.dim),
                         image=None, rope=torch.ones(4, dit.config.head_dim // 2, dtype=torch.complex64),
                         grid=(1, 2, 2), audio=None, routing=None, compute_dtype=torch.float32)
    runs = []

    def run(h, _inputs):
        runs.append(h.clone())
        return h * 2 + torch.tensor([1.0, -1.0])[:, None, None]  # residual h + 1 / h - 1 per row

    passes = (Branch.COND, Branch.DROP_AUDIO)
    h = torch.rand(2, 4, dit.config.dim, generator=torch.Generator().manual_seed(0))
    residual = run(h, inputs) - h
    runs.clear()
    cache.run_blocks(run, dit, passes, 1000.0, h, inputs)
    moved = h + 0.25
    out = cache.run_blocks(run, dit, passes, 800.0, moved, inputs)  # errors 0.02 / 0.01: skipped, scaled
    assert len(runs) == 1  # only the first step ran
    assert torch.allclose(out, moved + residual * torch.tensor([0.98, 0.99])[:, None, None])
    out = cache.run_blocks(run, dit, passes, 600.0, moved, inputs)  # COND: 0.02 + |1 - 0.98 * 0.97| = 0.0694
    assert len(runs) == 1 and cache.entries[Branch.COND].accumulated == pytest.approx(0.02 + 1 - 0.98 * 0.97)
    assert torch.allclose(out, moved + residual * torch.tensor([0.98 * 0.97, 0.99 * 0.99])[:, None, None])
    cache.run_blocks(run, dit, passes, 400.0, moved, inputs)  # K = 2 skips in a row reached: computed
    assert len(runs) == 2 and cache.entries[Branch.COND].skips == 0 and cache.skipped == 4
    cache.run_blocks(run, dit, passes, 200.0, moved, inputs)  # COND's ratio 0.5: error 0.5 > 0.1, both compute
    assert len(runs) == 3 and cache.entries[Branch.DROP_AUDIO].ratio == 1.0
    cache.run_blocks(run, dit, passes, 10.0, moved, inputs)  # the last step always computes
    assert len(runs) == 4 and cache.skipped == 4
    unknown = ChunkStepCache(config)
    unknown.run_blocks(run, dit, passes, 1000.0, h, inputs)
    unknown.run_blocks(run, dit, passes, 700.0, h, inputs)  # not a time of the calibrated schedule: computed
    assert len(runs) == 6 and unknown.skipped == 0
    with pytest.raises(ValueError, match="max_skips"):
        StepCacheConfig(0.1, max_skips=0)


def test_bad_thresholds_are_refused():
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="step_cache must be a threshold > 0"):
            StepCacheConfig(bad)
    times = StepCacheConfig.for_schedule(0.1, torch.tensor([1000.0, 800.0, 300.0, 0.0])).protected_t
    assert times == (1000.0, 300.0)
