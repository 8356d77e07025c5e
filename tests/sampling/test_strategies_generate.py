"""--strategy through generate() and the CLI with the demo model: exact length, resume from job_root, the
strategy in the job key, and clear errors for options of another strategy."""

from __future__ import annotations

import warnings

import pytest

from sampling.test_pipeline import FAST, count_frames, inputs, models  # noqa: F401 (fixtures)
from talkgen_core.cli import main
from talkgen_core.pipeline import generate


@pytest.mark.parametrize("strategy, params", [("sliding-window", {"overlap_frames": 5}),
                                              ("memory-bank", {"bank_size": 2, "memory_sigma": 0.2})])
def test_generate_with_a_strategy_resumes_from_its_own_job_folder(models, inputs, tmp_path, strategy, params):  # noqa: F811
    settings = dict(image=inputs / "face.png", audio=inputs / "a.wav", fps=30, models=models, job_root=tmp_path / "jobs",
                    strategy=strategy, **params, **FAST)
    first = generate(out=tmp_path / "a.mp4", **settings)
    assert first.frames == 30 and count_frames(tmp_path / "a.mp4") == (30, True) and first.chunks == 3
    again = generate(out=tmp_path / "b.mp4", **settings)
    assert again.job_path == first.job_path and again.replayed_chunks == again.chunks
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    other = generate(out=tmp_path / "c.mp4", **{**settings, "strategy": "infinitetalk"})
    assert other.job_path != first.job_path and other.replayed_chunks == 0


def test_cli_strategy_options(inputs, tmp_path, capsys):  # noqa: F811
    base = ["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--size", "16x16",
            "--steps", "1", "--chunk-frames", "17", "--context-frames", "5"]
    assert main([*base, "--out", str(tmp_path / "x.mp4"), "--strategy", "sliding-window", "--bank-size", "2"]) == 2
    assert "--bank-size belong(s) to another strategy" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "x.mp4"), "--strategy", "memory-bank", "--memory-sigma", "2"]) == 2
    assert "memory_sigma must be a number in [0, 1)" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([*base, "--out", str(tmp_path / "y.mp4"), "--strategy", "sliding-window", "--overlap-frames", "5"])
    assert code == 0 and count_frames(tmp_path / "y.mp4") == (25, True)
