"""generate_refined: two stages, each with its own job sub-folder; an interrupted chain resumes bit-exact."""

from __future__ import annotations

import av
import numpy as np
import pytest

from helpers.demo_fixtures import models, inputs  # noqa: F401 (pytest fixtures)
from talkgen_core.refine.chain import generate_refined, low_res_path

SETTINGS = {"chunk_frames": 17, "context_frames": 5, "steps": 1, "size": "16x16", "fps": 20.0, "refine_strength": 0.6}


def frames_of(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])


def test_interrupted_chain_resumes_from_both_stage_folders(models, inputs, tmp_path):
    common = dict(image=inputs / "face.png", audio=inputs / "a.wav", models=models, refiner_models=models,
                  **SETTINGS)  # the demo DiT refines too (training-free), so the chain's own resume is tested
    straight = generate_refined(out=tmp_path / "straight.mp4", **common)
    seen = []

    def crash_in_second_stage(event):
        if event.kind == "chunk":
            seen.append(event.chunk)
            if len(seen) == 3:  # the first stage's two chunks, then the refiner's first
                raise KeyboardInterrupt

    out = tmp_path / "hr.mp4"
    with pytest.raises(KeyboardInterrupt):
        generate_refined(out=out, job_dir=tmp_path / "job", progress=crash_in_second_stage, **common)
    assert not out.exists() and not low_res_path(out).exists()
    resumed = generate_refined(out=out, job_dir=tmp_path / "job", resume=True, **common)
    assert resumed.replayed_chunks == 1 and straight.chunks == 2
    assert np.array_equal(frames_of(out), frames_of(tmp_path / "straight.mp4"))
    assert frames_of(out).shape == (20, 32, 32, 3)


def test_chain_refuses_several_speakers(models, inputs, tmp_path):
    with pytest.raises(ValueError, match="one speaker"):
        generate_refined(out=tmp_path / "o.mp4", image=inputs / "face.png", audio=[inputs / "a.wav", inputs / "b.wav"],
                         models=models, **SETTINGS)
