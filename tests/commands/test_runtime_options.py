"""generate()'s run-time options with the demo model: block swap gives the same frames, the step cache computes
fewer DiT forwards, and --report / the in-process queue write the run's numbers."""

from __future__ import annotations

import json
import threading
import warnings

import pytest

from talkgen_core.cli import main
from talkgen_core.pipeline import DemoWeightsWarning, generate
from talkgen_core.queue.inprocess_runner import call_pipeline_generate, report_path
from talkgen_core.queue.manifest import Job
from helpers.demo_fixtures import models, inputs  # noqa: F401 (pytest fixtures)

FAST = {"chunk_frames": 17, "context_frames": 5, "steps": 4, "size": "16x16", "fps": 25}  # 2 chunks, 2 passes




def test_block_swap_gives_the_same_frames_and_the_step_cache_fewer_forwards(models, inputs):
    base = generate(image=inputs / "face.png", audio=inputs / "a.wav", models=models, **FAST)
    assert base.dit_forwards == base.chunks * 4 * 2 and base.peak_memory_bytes > 0 and base.memory_kind == "rss"
    swapped = generate(image=inputs / "face.png", audio=inputs / "a.wav", models=models, offload_blocks=3, **FAST)
    assert (swapped.images == base.images).all() and swapped.dit_forwards == base.dit_forwards
    cached = generate(image=inputs / "face.png", audio=inputs / "a.wav", models=models, step_cache=10.0, **FAST)
    assert cached.dit_forwards == base.chunks * 2 * 2  # only each chunk's first and last step computed
    assert 0 < float((cached.images - base.images).abs().mean()) < 0.1
    with pytest.raises(ValueError, match="offload_blocks must be a whole number from 0 to 4"):
        generate(image=inputs / "face.png", audio=inputs / "a.wav", models=models, offload_blocks=9, **FAST)


def test_cli_report_and_the_in_process_queue_keep_the_numbers(inputs, tmp_path):
    report = tmp_path / "run.json"
    args = ["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--out",
            str(tmp_path / "o.mp4"), "--chunk-frames", "17", "--context-frames", "5", "--size", "16x16",
            "--report", str(report), "--step-cache", "0.05", "--offload-blocks", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DemoWeightsWarning)
        assert main(args) == 0
    numbers = json.loads(report.read_text())
    assert numbers["frames"] == 25 and numbers["chunks"] == 2
    assert 0 < numbers["dit_forwards"] <= 2 * 4 * 2 and numbers["seconds"] > 0 and numbers["peak_memory_bytes"] > 0
    assert main([*args[:-4], "--sequence-parallel", "2"]) == 2  # not under torchrun: refused with the fix

    class Result:
        path = tmp_path / "job.mp4"

        def report(self):
            return {"dit_forwards": 7}

    def fake_generate(**kwargs):
        Result.path.write_bytes(b"video")
        return Result()

    job = Job(number=1, row=2, source_kind="image", source=inputs / "face.png", audio=(inputs / "a.wav",), output="job",
              settings={"step_cache": 0.1})
    call_pipeline_generate(fake_generate, job, tmp_path / "job.mp4", threading.Event())
    assert json.loads(report_path(tmp_path / "job.mp4").read_text()) == {"dit_forwards": 7}


def test_bad_runtime_settings_fail_before_any_model_is_loaded():
    from talkgen_core.validation import settings_problems

    assert settings_problems({"offload_blocks": 2, "step_cache": 0.1, "sequence_parallel": 1}) == []
    problems = " ".join(settings_problems({"offload_blocks": -1, "step_cache": -0.5, "sequence_parallel": "2"}))
    assert "offload_blocks must be a whole number >= 0" in problems
    assert "sequence_parallel must be a whole number >= 1" in problems
    assert "step_cache must be a threshold > 0" in problems
