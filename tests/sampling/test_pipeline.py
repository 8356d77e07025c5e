"""generate() and the CLI with the embedded demo model: exact length, audio muxed, resume, clear errors."""

from __future__ import annotations

import warnings

import av
import pytest
import torch

from talkgen_core.cli import main
from talkgen_core.pipeline import DemoWeightsWarning, generate, load_demo_models
from helpers.demo_fixtures import models, inputs  # noqa: F401 (pytest fixtures)

FAST = {"chunk_frames": 17, "context_frames": 5, "steps": 1, "size": "16x16"}  # 2 chunks per second of video



def test_demo_models_without_shipped_weights_warn_and_are_seeded(tmp_path):
    with pytest.warns(DemoWeightsWarning, match="random weights"):
        first = load_demo_models(weights_dir=tmp_path)
    with pytest.warns(DemoWeightsWarning):
        second = load_demo_models(weights_dir=tmp_path)
    assert first.random_weights and first.is_demo
    for a, b in zip(first.dit.parameters(), second.dit.parameters()):
        assert torch.equal(a, b)



def count_frames(path) -> tuple[int, bool]:
    with av.open(str(path)) as container:
        has_audio = bool(container.streams.audio)
        return sum(1 for _ in container.decode(container.streams.video[0])), has_audio


def test_generate_writes_exactly_round_seconds_times_fps_frames(models, inputs, tmp_path):
    out = tmp_path / "o.mp4"
    result = generate(image=inputs / "face.png", audio=inputs / "a.wav", out=out, fps=24, models=models, **FAST)
    assert result.frames == 24 and count_frames(out) == (24, True)
    assert (result.width, result.height) == (16, 16) and result.chunks == 2 and result.path == out


def test_resumed_generate_matches_and_frames_can_be_returned(models, inputs, tmp_path):
    straight = generate(image=inputs / "face.png", audio=inputs / "a.wav", fps=25, models=models, **FAST)
    assert straight.images.shape == (25, 16, 16, 3)

    def crash(event):
        if event.kind == "chunk" and event.chunk == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(image=inputs / "face.png", audio=inputs / "a.wav", fps=25, models=models, job_dir=tmp_path / "job",
                 progress=crash, **FAST)
    resumed = generate(image=inputs / "face.png", audio=inputs / "a.wav", fps=25, models=models,
                       job_dir=tmp_path / "job", resume=True, **FAST)
    assert resumed.replayed_chunks == 1 and torch.equal(resumed.images, straight.images)
    with pytest.raises(ValueError, match="steps: 1 -> 2"):
        generate(image=inputs / "face.png", audio=inputs / "a.wav", fps=25, models=models,
                 job_dir=tmp_path / "job", resume=True, **{**FAST, "steps": 2})


def test_bad_inputs_are_explained(models, inputs, tmp_path):
    with pytest.raises(ValueError, match="exactly one of image"):
        generate(audio=inputs / "a.wav", models=models, **FAST)
    with pytest.raises(ValueError, match="multiples of 16"):
        generate(image=inputs / "face.png", audio=inputs / "a.wav", models=models, **{**FAST, "size": "24x24"})


def test_cli_generate(inputs, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    args = ["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--fps", "30",
            "--out", str(out), "--chunk-frames", "17", "--context-frames", "5", "--steps", "1", "--size", "16x16"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DemoWeightsWarning)
        assert main(args) == 0
    assert count_frames(out) == (30, True)
    assert "30 frames at 30 fps" in capsys.readouterr().out
    assert main(["generate", "--image", "x.png", "--audio", "a.wav", "--out", "o.mp4", "--resume"]) == 2


def test_pre_encoded_speech_and_fixed_clip_features(models, inputs):
    from talkgen_core.conditioning.speech import embed_speech

    speech = embed_speech(models.wav2vec2, [str(inputs / "a.wav")], fps=25.0)
    from_audio = generate(image=inputs / "face.png", audio=inputs / "a.wav", fps=25, models=models, **FAST)
    from_speech = generate(image=inputs / "face.png", speech=speech, fps=25, models=models, **FAST)
    torch.testing.assert_close(from_speech.images, from_audio.images, atol=2e-3, rtol=0)
    clip = torch.randn(1, 257, models.dit.config.clip_dim)
    with_clip = generate(image=inputs / "face.png", speech=speech, fps=25, models=models, clip_features=clip, **FAST)
    assert with_clip.frames == 25 and not torch.equal(with_clip.images, from_speech.images)
    with pytest.raises(ValueError, match="re-encode"):
        generate(image=inputs / "face.png", speech=speech, fps=30, models=models, **FAST)
