"""Long-video strategies with fake models: wavefront == lockstep, fusion weights, the memory bank's rule and noise,
exact length, resume bit-exact, references by time, model calls, and the strategy in the job key."""

from __future__ import annotations

import pytest
import torch

from sampling.streaming_fakes import FakeDiT, FakeVAE
from sampling.test_streaming import SIZE, index_features, make_sampler, reference_image
from talkgen_core.sampling.chunks import latent_frames
from talkgen_core.sampling.guidance import APGConfig, GuidanceConfig
from talkgen_core.sampling.jobdir import JobDir, ResumeMismatch, chunk_seed, job_key
from talkgen_core.sampling.references import PerChunkReferences, VideoReferences
from talkgen_core.sampling.strategies import STRATEGIES, get_strategy
from talkgen_core.sampling.strategies.memory_bank import MemoryBankParams, updated_bank
from talkgen_core.sampling.strategies.wavefront import lockstep, wavefront, window_weights
from talkgen_core.sampling.streaming import (
    Cancelled, StreamConditioning, StreamingSampler, StreamSettings, encode_reference_condition,
)
from talkgen_core.sampling.wrappers import pin_leading_frames
from talkgen_core.video.writer import FrameCollector

SLIDING = {"strategy": "sliding-window", "strategy_params": {"overlap_frames": 5}}
MEMORY = {"strategy": "memory-bank", "strategy_params": {"bank_size": 3, "bank_every": 1, "memory_sigma": 0.2}}


def strategy_sampler(total: int, strategy: dict, chunk_frames: int = 17, context_frames: int = 5,
                     references=None, fps: float = 25.0, **settings) -> StreamingSampler:
    plan = get_strategy(strategy["strategy"])(strategy["strategy_params"]).plan(total, chunk_frames, context_frames)
    return make_sampler(plan, fps, references, **strategy, **settings)


def images(n: int) -> PerChunkReferences:
    return PerChunkReferences([reference_image(i) for i in range(n)], SIZE)


def job_for(path, sampler, resume=False) -> JobDir:
    return JobDir(path, sampler.settings.to_dict(), "same-inputs", sampler.plan.num_chunks, resume=resume)


# -- sliding-window: the schedule, the fusion and the wavefront ----------------------------------------------------


def test_wavefront_runs_every_operation_once_after_its_inputs():
    for windows, steps in [(1, 3), (5, 1), (6, 4), (3, 7)]:
        order = list(wavefront(windows, steps))
        assert sorted(order) == sorted(lockstep(windows, steps)) and len(set(order)) == windows * steps
        position = {op: i for i, op in enumerate(order)}
        for (k, s), i in position.items():
            needed = [(j, s - 1) for j in (k - 1, k, k + 1) if 0 <= j < windows and s > 0]
            assert all(position[op] < i for op in needed), (k, s)
        alive = max(len({k for k, s in order[: i + 1]} - {k for k, s in order[: i + 1] if s == steps - 1})
                    for i in range(len(order)))
        assert alive <= steps  # a band of windows, not the whole video


def test_fusion_weights_ramp_across_the_overlap_and_sum_to_one():
    window, overlap, windows = 6, 3, 4
    total = torch.zeros((windows - 1) * (window - overlap) + window)
    for k in range(windows):
        w = window_weights(k, windows, window, overlap)
        start = k * (window - overlap)
        total[start : start + window] += w
        if k:
            torch.testing.assert_close(w[:overlap], torch.tensor([0.0, 1 / 3, 2 / 3]))
        if k < windows - 1:
            torch.testing.assert_close(w[-overlap:], torch.tensor([1.0, 2 / 3, 1 / 3]))
    torch.testing.assert_close(total, torch.ones_like(total))
    assert torch.equal(window_weights(0, 1, window, overlap), torch.ones(window))


def lockstep_latents(sampler: StreamingSampler) -> torch.Tensor:
    """Sliding-window denoising written plainly: every window steps from the whole video's fused latents at once."""
    plan, times = sampler.plan, sampler.timesteps
    window, overlap = plan.latent_frames_per_chunk, latent_frames(plan.context_frames)
    stride, windows = window - overlap, plan.num_chunks
    models, noise = [], []
    for k in range(windows):
        chunk = plan.chunk(k)
        reference = sampler.references.reference_for(chunk, sampler.fps)
        condition = encode_reference_condition(sampler.vae, reference, chunk.length)
        models.append((sampler.guided(sampler.chunk_conditioning(chunk, reference, condition)), condition[:, 4:, :1]))
        generator = torch.Generator().manual_seed(chunk_seed(sampler.settings.seed, k))
        noise.append(torch.randn(condition[:, 4:].shape, generator=generator))
    x = torch.cat([noise[0]] + [n[:, :, overlap:] for n in noise[1:]], dim=2)
    x[:, :, :1] = models[0][1]
    estimate = torch.zeros_like(x)
    for s in range(len(times) - 1):
        fused = torch.zeros_like(x)
        for k, (guided, reference_latent) in enumerate(models):
            a = k * stride
            lead = reference_latent if k == 0 else estimate[:, :, a : a + 1]
            model_fn = pin_leading_frames(guided, lead)
            xk = x[:, :, a : a + window]
            v = model_fn(xk, float(times[s]))
            if k < windows - 1:
                denoised = xk - (float(times[s]) / 1000.0) * v
                estimate[:, :, a + stride : a + stride + 1] = denoised[:, :, stride : stride + 1]
            stepped = xk + ((float(times[s + 1]) - float(times[s])) / 1000.0) * v
            if k == 0:
                stepped[:, :, :1] = reference_latent
            fused[:, :, a : a + window] += window_weights(k, windows, window, overlap).view(1, 1, -1, 1, 1) * stepped
        x = fused
    return x


def test_wavefront_equals_lockstep_bit_exact(tmp_path):
    sampler = strategy_sampler(100, SLIDING, references=images(6), steps=4, guidance=GuidanceConfig(1.0, 2.0))
    assert sampler.plan.num_chunks == 8
    job = job_for(tmp_path, sampler)
    sampler.run(FrameCollector(), job=job)
    streamed = torch.cat([job.load_chunk(k) for k in range(sampler.plan.num_chunks)], dim=2)
    expected = lockstep_latents(sampler)
    assert streamed.shape == expected.shape
    assert torch.equal(streamed, expected)


def test_one_window_is_exactly_infinitetalks_first_chunk():
    frames = {}
    for name, strategy in [("sliding", SLIDING), ("infinitetalk", {"strategy": "infinitetalk", "strategy_params": {}})]:
        sink = FrameCollector()
        strategy_sampler(15, strategy, steps=3, guidance=GuidanceConfig(1.0, 2.0)).run(sink)
        frames[name] = sink.frames()
    assert torch.equal(frames["sliding"], frames["infinitetalk"])


def test_sliding_window_refuses_what_it_cannot_serve():
    with pytest.raises(ValueError, match="solvers euler, euler_ancestral"):
        StreamSettings(solver="heun", **SLIDING)
    with pytest.raises(ValueError, match="APG"):
        StreamSettings(guidance=GuidanceConfig(apg=APGConfig()), **SLIDING)
    with pytest.raises(ValueError, match="4n\\+1"):
        StreamSettings(strategy="sliding-window", strategy_params={"overlap_frames": 6})
    with pytest.raises(ValueError, match="more than half"):
        strategy_sampler(60, {"strategy": "sliding-window", "strategy_params": {"overlap_frames": 13}})
    with pytest.raises(ValueError, match="no parameter.*bank_size"):
        StreamSettings(strategy="sliding-window", strategy_params={"bank_size": 2})
    with pytest.raises(ValueError, match="unknown strategy 'window'.*sliding-window"):
        StreamSettings(strategy="window")


# -- memory-bank -------------------------------------------------------------------------------------------------


def test_memory_bank_rule_keeps_the_reference_and_refreshes_every_n_chunks():
    params = MemoryBankParams(bank_size=3, bank_every=2, memory_sigma=0.1)
    bank: list[torch.Tensor] = []
    history = []
    for k in range(7):
        latents = torch.full((1, 1, 4, 1, 1), float(k))
        latents[:, :, 0] = 100 + k  # latent 0: chunk 0's is the first reference's own latent
        bank = updated_bank(bank, k, latents, params)
        history.append([float(b) for b in bank])
    assert history == [[100], [100, 1], [100, 1], [100, 1, 3], [100, 1, 3], [100, 3, 5], [100, 3, 5]]
    assert updated_bank([], 0, torch.zeros(1, 1, 4, 1, 1), MemoryBankParams(bank_size=0)) == []


def test_memory_bank_and_context_are_noised_to_sigma_m_and_saved_clean(tmp_path):
    sigma = MEMORY["strategy_params"]["memory_sigma"]
    sampler = strategy_sampler(60, MEMORY, steps=2)
    seen = []
    forward = sampler.dit.forward
    sampler.dit.forward = lambda x, t, *args, **kwargs: (seen.append(x.clone()), forward(x, t, *args, **kwargs))[1]
    job = job_for(tmp_path, sampler)
    sampler.run(FrameCollector(), job=job)
    latents = [job.load_chunk(k) for k in range(3)]
    # chunk 2 sees the bank [chunk 0's latent 0, chunk 0's last, chunk 1's last] then chunk 1's 2 tail latents
    clean = torch.cat([latents[0][:, :, :1], latents[0][:, :, -1:], latents[1][:, :, -1:], latents[1][:, :, -2:]], 2)
    generator = torch.Generator().manual_seed(chunk_seed(sampler.settings.seed, 2))
    torch.randn((1, 4, 5, *clean.shape[3:]), generator=generator)  # the chunk's initial noise comes first
    expected = (1 - sigma) * clean + sigma * torch.randn(clean.shape, generator=generator)
    chunk2 = seen[4]  # 2 steps per chunk
    assert chunk2.shape[2] == 3 + 5
    torch.testing.assert_close(chunk2[:, :, :5], expected, rtol=0, atol=1e-6)
    assert torch.equal(latents[2][:, :, :2], latents[1][:, :, -2:])  # saved with the clean context


def test_memory_bank_without_bank_or_noise_is_infinitetalk():
    frames = []
    for strategy in ({"strategy": "infinitetalk", "strategy_params": {}},
                     {"strategy": "memory-bank", "strategy_params": {"bank_size": 0, "memory_sigma": 0.0}}):
        sink = FrameCollector()
        strategy_sampler(70, strategy, solver="euler_ancestral", guidance=GuidanceConfig(3.0, 2.0)).run(sink)
        frames.append(sink.frames())
    assert torch.equal(frames[0], frames[1])


# -- services every strategy gets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [SLIDING, MEMORY])
@pytest.mark.parametrize("seconds, fps", [(3.1, 24), (4.3, 25), (2.9, 30)])
def test_exact_length(strategy, seconds, fps):
    plan_frames = round(seconds * fps)
    sampler = strategy_sampler(plan_frames, strategy, fps=fps)
    sink = FrameCollector()
    result = sampler.run(sink)
    assert sink.frames().shape == (plan_frames, 3, *SIZE) and result.frames == plan_frames


class Crash(Exception):
    pass


@pytest.mark.parametrize("strategy, settings", [
    (SLIDING, {"solver": "euler_ancestral", "guidance": GuidanceConfig(3.0, 2.0)}),
    (MEMORY, {"solver": "dpmpp_2m", "guidance": GuidanceConfig(4.0, 3.0, apg=APGConfig())}),
])
def test_resume_after_crash_is_bit_exact(tmp_path, strategy, settings):
    straight = FrameCollector()
    strategy_sampler(80, strategy, references=images(3), steps=3, **settings).run(straight)
    for crash_at in (0, 2):
        folder = tmp_path / f"job{crash_at}"
        sampler = strategy_sampler(80, strategy, references=images(3), steps=3, **settings)

        def crash(event, at=crash_at):
            if event.kind == "chunk" and event.chunk == at:
                raise Crash()

        with pytest.raises(Crash):
            sampler.run(FrameCollector(), job=job_for(folder, sampler), progress=crash)
        resumed_sampler = strategy_sampler(80, strategy, references=images(3), steps=3, **settings)
        resumed = FrameCollector()
        result = resumed_sampler.run(resumed, job=job_for(folder, resumed_sampler, resume=True))
        assert result.replayed_chunks == crash_at + 1
        assert torch.equal(resumed.frames(), straight.frames())
        assert len(list(folder.glob("carry_*"))) == 0  # the last window needs no band; older bands are removed


def test_sliding_window_cancel_between_steps_then_resume(tmp_path):
    straight = FrameCollector()
    strategy_sampler(80, SLIDING, steps=3).run(straight)
    sampler = strategy_sampler(80, SLIDING, steps=3)
    events = []
    with pytest.raises(Cancelled, match="after 2 of"):
        sampler.run(FrameCollector(), job=job_for(tmp_path, sampler), progress=events.append,
                    cancel=lambda: sum(e.kind == "chunk" for e in events) >= 2)
    assert [p.name for p in tmp_path.glob("carry_*")] == ["carry_00001.safetensors"]
    resumed_sampler = strategy_sampler(80, SLIDING, steps=3)
    resumed = FrameCollector()
    resumed_sampler.run(resumed, job=job_for(tmp_path, resumed_sampler, resume=True))
    assert torch.equal(resumed.frames(), straight.frames())


def test_a_lost_band_starts_the_sliding_window_run_over(tmp_path):
    straight = FrameCollector()
    strategy_sampler(80, SLIDING).run(straight)
    sampler = strategy_sampler(80, SLIDING)
    with pytest.raises(Crash):
        sampler.run(FrameCollector(), job=job_for(tmp_path, sampler),
                    progress=lambda e: (_ for _ in ()).throw(Crash()) if e.kind == "chunk" and e.chunk == 1 else None)
    (tmp_path / "carry_00001.safetensors").write_bytes(b"damaged")
    resumed_sampler = strategy_sampler(80, SLIDING)
    resumed = FrameCollector()
    with pytest.warns(UserWarning, match="starts over"):
        result = resumed_sampler.run(resumed, job=job_for(tmp_path, resumed_sampler, resume=True))
    assert result.replayed_chunks == 0 and torch.equal(resumed.frames(), straight.frames())


class TimedSource:
    """A 'video' whose frame at time t is a flat grey of value t, recording the times asked for."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def frame_at(self, time_s: float):
        import numpy as np

        self.times.append(time_s)
        return np.full((16, 24, 3), min(255, int(time_s * 50)), dtype=np.uint8)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("strategy", [SLIDING, MEMORY])
def test_dubbing_references_at_the_windows_source_times(strategy):
    source = TimedSource()
    references = VideoReferences(source, SIZE)
    sampler = strategy_sampler(90, strategy, references=references, fps=30.0)
    sampler.run(FrameCollector())
    starts = [chunk.start / 30.0 for chunk in sampler.plan.chunks()]
    assert sorted(set(source.times[1:])) == pytest.approx(starts)  # [0] is the colour reference


@pytest.mark.parametrize("strategy", [SLIDING, MEMORY, {"strategy": "infinitetalk", "strategy_params": {}}])
@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_each_strategy_calls_the_model_as_often_as_it_states(strategy, solver):
    if strategy is SLIDING and solver == "heun":
        solver = "euler_ancestral"
    sampler = strategy_sampler(70, strategy, steps=3, solver=solver)
    sampler.run(FrameCollector())
    stated = sampler.strategy.model_evaluations(sampler.plan, 3, solver)
    assert sampler.dit.calls == stated > 0  # one pass per evaluation (CFG off)


def test_the_strategy_and_its_parameters_are_in_the_job_key(tmp_path):
    keys = {job_key(StreamSettings(**s).to_dict(), "inputs", 3) for s in (
        {}, SLIDING, {"strategy": "sliding-window", "strategy_params": {"overlap_frames": 9}}, MEMORY,
        {"strategy": "memory-bank", "strategy_params": {"memory_sigma": 0.3}})}
    assert len(keys) == 5
    assert "strategy" not in StreamSettings().to_dict()  # old infinitetalk job folders keep their keys
    assert StreamSettings(strategy="memory-bank").to_dict()["strategy_params"] == {
        "bank_size": 3, "bank_every": 2, "memory_sigma": 0.1}
    sampler = strategy_sampler(60, SLIDING)
    sampler.run(FrameCollector(), job=job_for(tmp_path, sampler))
    other = strategy_sampler(60, MEMORY)
    with pytest.raises(ResumeMismatch, match="strategy"):
        job_for(tmp_path, other, resume=True)


def test_every_strategy_is_registered_by_its_name():
    assert list(STRATEGIES) == ["infinitetalk", "sliding-window", "memory-bank"]
    assert all(cls.name == name for name, cls in STRATEGIES.items())


class DecodeCount:
    def __init__(self) -> None:
        self.seen = 0

    def to(self, device) -> "DecodeCount":
        return self


class StreamingFakeVAE(FakeVAE):
    """FakeVAE with decode streams: a stream's first latent gives one frame, every later latent four."""

    def new_decode_state(self) -> DecodeCount:
        return DecodeCount()

    def decode_chunk(self, latents: torch.Tensor, state: DecodeCount) -> torch.Tensor:
        frames = self.decode(latents)
        if state.seen:
            frames = torch.cat([frames[:, :, :1].repeat(1, 1, 4, 1, 1), frames[:, :, 1:]], dim=2)
        state.seen += latents.shape[2]
        return frames


@pytest.mark.parametrize("vae", [FakeVAE, StreamingFakeVAE])
def test_sliding_window_frames_are_the_one_pass_decode_of_its_latents(tmp_path, vae):
    plan = get_strategy("sliding-window")({"overlap_frames": 5}).plan(50, 17, 5)
    sampler = StreamingSampler(FakeDiT(), vae(), plan, 25.0, images(4),
                               StreamConditioning(index_features(50), torch.zeros(1, 2, 8)),
                               StreamSettings(steps=2, colour_strength=0.0, guidance=GuidanceConfig(1.0, 1.0),
                                              **SLIDING))
    sink, job = FrameCollector(), job_for(tmp_path, sampler)
    sampler.run(sink, job=job)
    latents = torch.cat([job.load_chunk(k) for k in range(plan.num_chunks)], dim=2)
    one_pass = FakeVAE().decode(latents)[0, :, :50].permute(1, 0, 2, 3)
    assert torch.equal(sink.frames(), one_pass)
