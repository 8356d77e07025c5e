"""``generate --preset``: a preset's steps, shift, solver, guidance and chunking reach the sampler, and explicit
options still win (demo model, 16 x 16, 1 s of audio)."""

from __future__ import annotations


import pytest
import torch

import talkgen_core.pipeline as pipeline
from helpers.demo_fixtures import generate_report as _generate
from helpers.demo_fixtures import inputs  # noqa: F401 (pytest fixture)
from talkgen_core.cli import main
from talkgen_core.sampling.schedules import flow_timesteps


@pytest.fixture
def seen(monkeypatch):
    """The settings and plan of every StreamingSampler the runs build."""
    records = []

    class Recording(pipeline.StreamingSampler):
        def __init__(self, dit, vae, plan, fps, references, conditioning, settings, device=None):
            records.append((settings, plan))
            super().__init__(dit, vae, plan, fps, references, conditioning, settings, device)

    monkeypatch.setattr(pipeline, "StreamingSampler", Recording)
    return records


def test_flashtalk_preset_reaches_the_sampler(inputs, tmp_path, seen):
    numbers = _generate(inputs, tmp_path, "--preset", "flashtalk")
    settings, plan = seen[-1]
    assert (settings.steps, settings.shift, settings.solver) == (4, 5.0, "euler_ancestral")
    assert (settings.guidance.text_scale, settings.guidance.audio_scale) == (1.0, 1.0)
    assert (plan.chunk_frames, plan.context_frames) == (33, 5)
    torch.testing.assert_close(settings.time_grid(),
                               torch.tensor([1000.0, 937.5, 2500.0 / 3.0, 625.0, 0.0], dtype=torch.float64))
    assert numbers["chunks"] == 1 and numbers["dit_forwards"] == 4  # one pass per step: no CFG


def test_explicit_options_override_the_preset(inputs, tmp_path, seen):
    numbers = _generate(inputs, tmp_path, "--preset", "lightx2v-4step", "--steps", "2", "--audio-cfg", "2",
                        "--chunk-frames", "17", "--context-frames", "5")
    settings, plan = seen[-1]
    assert (settings.steps, settings.shift, settings.solver, settings.timesteps) == (2, 7.0, "euler", None)
    assert (settings.guidance.text_scale, settings.guidance.audio_scale) == (1.0, 2.0)
    assert (plan.chunk_frames, plan.context_frames) == (17, 5)
    torch.testing.assert_close(settings.time_grid(), flow_timesteps(2, 7.0))
    assert numbers["dit_forwards"] == numbers["chunks"] * 2 * 2  # audio CFG: two passes per step


def test_without_a_preset_the_demo_preset_and_old_defaults_stay(inputs, tmp_path, seen):
    _generate(inputs, tmp_path)
    settings, plan = seen[-1]
    assert (settings.steps, settings.shift, settings.solver, settings.timesteps) == (4, 7.0, "euler", None)
    assert (settings.guidance.text_scale, settings.guidance.audio_scale) == (1.0, 2.0)
    assert (plan.chunk_frames, plan.context_frames) == (81, 9)


def test_an_unknown_preset_is_refused_with_the_choices(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--out",
              str(tmp_path / "o.mp4"), "--preset", "turbo"])
    assert "flashtalk" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown preset 'turbo'"):
        pipeline.generate(image=inputs / "face.png", audio=inputs / "a.wav", preset="turbo")
