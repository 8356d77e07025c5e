"""Step-cache calibration: the recorder measures MagCache's magnitude ratios without changing the output, a
stored calibration applies only to the weights and the schedule it was measured on (else the cache falls back
to TeaCache's raw distance and says so), and the shipped demo calibration names the shipped demo weights."""

from __future__ import annotations

import json

import pytest
import torch

from helpers.dit_inputs import dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.demo import DEMO_WEIGHT_FILES, WEIGHTS_DIR
from talkgen_core.models.runtime import RunStats, counted_forwards, dit_runtime
from talkgen_core.models.step_cache import TEACACHE_RAW, StepCacheConfig, resolved, step_cache
from talkgen_core.models.step_cache_calibration import StepPair, calibration, recording, schedule_times
from talkgen_core.models.step_cache_fit import FIT_SUFFIX, stored_fits, stored_ratios, weights_fingerprint
from talkgen_core.sampling.guidance import GuidanceConfig, GuidedVelocity
from talkgen_core.sampling.schedules import flow_timesteps
from talkgen_core.sampling.solvers import euler
from talkgen_core.sampling.wrappers import ChunkConditioning, DiTVelocity

STEPS = 6
TIMESTEPS = flow_timesteps(STEPS, 5.0)
TIMES = [float(t) for t in TIMESTEPS[:-1]]


@pytest.fixture(scope="module")
def model():
    return build_dit("tiny", seed=5).eval().requires_grad_(False)


def solve(model, config: StepCacheConfig | None, record: bool = False):
    i = dit_inputs(model.config, frames=3, size=4)
    conditioning = ChunkConditioning(cond=i["cond"], context=i["context"], audio=i["audio"])
    stats = RunStats()
    noise = torch.randn(1, model.config.out_dim, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    with (recording(model) if record else step_cache(model, config)) as recorded, counted_forwards(model, stats):
        guided = GuidedVelocity(DiTVelocity(model, conditioning), GuidanceConfig(text_scale=1.0, audio_scale=3.0))
        x = euler(guided, noise, TIMESTEPS)
    return x, stats.dit_forwards, recorded


def store(folder, model, times, ratios) -> None:
    fit = {"weights_fingerprint": weights_fingerprint(model), "schedule": {"times": list(times)},
           "magnitude_ratios": ratios}
    (folder / f"tiny{FIT_SUFFIX}").write_text(json.dumps(fit))


def test_recording_measures_magnitude_ratios_without_changing_the_output(model):
    plain, plain_forwards, _ = solve(model, None)
    recorded, forwards, pairs = solve(model, None, record=True)
    assert torch.equal(recorded, plain) and forwards == plain_forwards == STEPS * 2
    assert len(pairs) == (STEPS - 1) * 2  # each step against the previous one, per guidance pass
    assert {p.pass_name for p in pairs} == {"COND", "DROP_AUDIO"}
    assert all(p.t < p.t_previous and p.magnitude_ratio > 0 and p.output_change > 0 for p in pairs)
    times = schedule_times(pairs)
    assert times == pytest.approx(TIMES, abs=1e-5)
    result = calibration(pairs, times)
    for name in ("COND", "DROP_AUDIO"):
        series = result["magnitude_ratios"][name]
        assert len(series) == STEPS and series[0] == 1.0
        mine = [p.magnitude_ratio for p in pairs if p.pass_name == name]
        assert series[1:] == pytest.approx(mine)  # one pair per step here: the mean is the pair


def test_calibration_averages_per_pass_and_step_and_refuses_another_schedule():
    pairs = [StepPair(name, 1000.0, 900.0, 0.1, 0.1, ratio) for name, ratio in
             (("COND", 0.9), ("COND", 0.7), ("UNCOND", 1.2))]
    result = calibration(pairs, [1000.0, 900.0])
    assert result["magnitude_ratios"] == {"COND": [1.0, pytest.approx(0.8)], "UNCOND": [1.0, 1.2]}
    with pytest.raises(ValueError, match="no recorded step at t = 500"):
        calibration(pairs, [1000.0, 900.0, 500.0])


def test_a_stored_calibration_applies_only_to_its_weights_and_schedule(model, tmp_path):
    ratios = {"COND": [1.0] + [0.99] * (STEPS - 1), "DROP_AUDIO": [1.0] + [0.98] * (STEPS - 1)}
    store(tmp_path, model, TIMES, ratios)
    found, source = stored_ratios(model, TIMES, tmp_path)
    assert source == f"tiny{FIT_SUFFIX}" and found["DROP_AUDIO"] == tuple(ratios["DROP_AUDIO"])
    assert stored_ratios(build_dit("tiny", seed=6).eval(), TIMES, tmp_path) == (None, None)  # other weights
    other_shift = [float(t) for t in flow_timesteps(STEPS, 3.0)[:-1]]
    assert stored_ratios(model, other_shift, tmp_path) == (None, None)  # same step count, another shift
    assert stored_ratios(model, TIMES[:-1], tmp_path) == (None, None)  # another step count
    assert stored_ratios(build_dit("tiny", seed=5).to(torch.bfloat16), TIMES, tmp_path)[1] is not None  # cast


def test_without_a_matching_calibration_the_cache_falls_back_to_teacache_and_says_so(model, caplog):
    config = StepCacheConfig.for_schedule(0.3, TIMESTEPS)
    assert resolved(model, config) == config and config.rule == TEACACHE_RAW  # a random model: no calibration
    with caplog.at_level("WARNING"), step_cache(model, config) as rule:
        assert rule == TEACACHE_RAW
    assert "no MagCache calibration matches" in caplog.text and "raw input distance" in caplog.text
    with dit_runtime(model, torch.device("cpu"), step_cache_config=config) as stats:
        pass
    assert stats.step_cache_rule == TEACACHE_RAW  # what --report writes as step_cache_rule
    with dit_runtime(model, torch.device("cpu")) as stats:
        pass
    assert stats.step_cache_rule is None
    given = StepCacheConfig.for_schedule(0.3, TIMESTEPS, magnitude_ratios={"COND": [1.0] * STEPS})
    assert resolved(model, given) is given and given.rule == "magcache"  # given ratios win
    with pytest.raises(ValueError, match="must be 6 finite numbers > 0"):
        StepCacheConfig.for_schedule(0.3, TIMESTEPS, magnitude_ratios={"COND": [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]})


def test_a_tiny_threshold_leaves_the_output_bit_identical_under_either_rule(model):
    plain, _, _ = solve(model, None)
    near_one = [1.0] + [0.999] * (STEPS - 1)  # an error of 1e-3 per step, over the threshold
    for ratios in (None, {"COND": near_one, "DROP_AUDIO": near_one}):
        config = StepCacheConfig.for_schedule(1e-9, TIMESTEPS, magnitude_ratios=ratios)
        cached, forwards, _ = solve(model, config)
        assert torch.equal(cached, plain) and forwards == STEPS * 2


def test_the_shipped_demo_calibration_names_the_shipped_demo_weights_and_schedule():
    fits = [f for f in stored_fits() if f.get("weights") == DEMO_WEIGHT_FILES["dit"]]
    if not (WEIGHTS_DIR / DEMO_WEIGHT_FILES["dit"]).is_file() or not fits:
        pytest.skip("no shipped demo weights or calibration")
    from talkgen_core.models.demo import build_demo_networks
    from talkgen_core.pipeline import DEMO_PRESET

    dit = build_demo_networks().dit
    demo_times = [float(t) for t in flow_timesteps(DEMO_PRESET.steps, DEMO_PRESET.shift)[:-1]]
    ratios, source = stored_ratios(dit, demo_times)
    assert source == fits[0]["file"] and set(ratios) == {"COND", "DROP_AUDIO"}
    assert all(0 < r < 2 for series in ratios.values() for r in series)
    assert stored_ratios(dit, [float(t) for t in flow_timesteps(8, DEMO_PRESET.shift)[:-1]]) == (None, None)
