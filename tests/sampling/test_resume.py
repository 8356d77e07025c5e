"""Resumable runs: a crash or a cancel mid-run, then a resume, gives bit-identical output; mismatches refused."""

from __future__ import annotations

import pytest
import torch

from sampling.test_streaming import make_sampler
from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.sampling.guidance import APGConfig, GuidanceConfig
from talkgen_core.sampling.jobdir import JobDir, ResumeMismatch, chunk_seed
from talkgen_core.sampling.streaming import Cancelled
from talkgen_core.video.writer import FrameCollector

PLAN = ChunkPlan(52, chunk_frames=17, context_frames=5)  # 4 chunks
SETTINGS = [
    {"solver": "euler_ancestral", "guidance": GuidanceConfig(4.0, 3.0, apg=APGConfig())},
    {"solver": "dpmpp_2m", "context_mode": "pixel", "colour_strength": 0.7},
]


def job_for(path, sampler, resume=False) -> JobDir:
    return JobDir(path, sampler.settings.to_dict(), "same-inputs", PLAN.num_chunks, resume=resume)


class Crash(Exception):
    pass


@pytest.mark.parametrize("settings", SETTINGS)
def test_resume_after_crash_is_bit_exact(tmp_path, settings):
    straight = FrameCollector()
    make_sampler(PLAN, **settings).run(straight)

    sampler = make_sampler(PLAN, **settings)

    def crash_after_second_chunk(event):
        if event.kind == "chunk" and event.chunk == 1:
            raise Crash()

    partial = FrameCollector()
    with pytest.raises(Crash):
        sampler.run(partial, job=job_for(tmp_path, sampler), progress=crash_after_second_chunk)
    assert partial.frames_written == PLAN.chunk(0).output_frames + PLAN.chunk(1).output_frames

    resumed_sampler = make_sampler(PLAN, **settings)
    resumed = FrameCollector()
    result = resumed_sampler.run(resumed, job=job_for(tmp_path, resumed_sampler, resume=True))
    assert result.replayed_chunks == 2
    assert torch.equal(resumed.frames(), straight.frames())


def test_cancel_between_steps_then_resume(tmp_path):
    straight = FrameCollector()
    make_sampler(PLAN, steps=3).run(straight)
    sampler = make_sampler(PLAN, steps=3)
    calls = {"n": 0}

    def cancel_in_third_chunk() -> bool:
        calls["n"] += 1
        return calls["n"] > 7  # 3 checks per chunk (before it, between its 3 steps): stops inside chunk 2

    with pytest.raises(Cancelled, match="after 2 of 4 chunks") as info:
        sampler.run(FrameCollector(), job=job_for(tmp_path, sampler), cancel=cancel_in_third_chunk)
    assert info.value.finished_chunks == 2 and str(tmp_path) in str(info.value)
    assert JobDir(tmp_path, sampler.settings.to_dict(), "same-inputs", 4, resume=True).finished == 2
    resumed = FrameCollector()
    again = make_sampler(PLAN, steps=3)
    again.run(resumed, job=job_for(tmp_path, again, resume=True))
    assert torch.equal(resumed.frames(), straight.frames())


def test_resume_refuses_other_settings_and_inputs(tmp_path):
    JobDir(tmp_path, {"steps": 3, "guidance": {"text_scale": 5.0}}, "h1", 4)
    with pytest.raises(ResumeMismatch) as info:
        JobDir(tmp_path, {"steps": 4, "guidance": {"text_scale": 5.0}}, "h2", 4, resume=True)
    message = str(info.value)
    assert "steps: 3 -> 4" in message and "inputs" in message and "text_scale" not in message
    with pytest.raises(FileExistsError, match="resume"):
        JobDir(tmp_path, {"steps": 3, "guidance": {"text_scale": 5.0}}, "h1", 4)


def test_missing_chunk_file_shortens_the_resume_point(tmp_path):
    job = JobDir(tmp_path, {}, "h", 3)
    for i in range(3):
        job.save_chunk(i, torch.full((1, 2, 2, 1, 1), float(i)))
    job.chunk_path(1).unlink()
    again = JobDir(tmp_path, {}, "h", 3, resume=True)
    assert again.finished == 1 and torch.equal(again.load_chunk(0), torch.zeros(1, 2, 2, 1, 1))
    with pytest.raises(ValueError, match="order"):
        again.save_chunk(2, torch.zeros(1))


def test_chunk_seeds_depend_only_on_seed_and_index():
    assert chunk_seed(42, 3) == chunk_seed(42, 3)
    seeds = {chunk_seed(s, i) for s in (0, 1, 42) for i in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)
