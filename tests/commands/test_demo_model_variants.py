"""``--demo-model distilled``: the student's weights, its own grid and one pass per step; the base stays default."""

from __future__ import annotations

import shutil

import pytest
from safetensors.torch import load_file, save_file

import talkgen_core.models.demo as demo
from helpers.demo_fixtures import generate_report as _generate
from helpers.demo_fixtures import inputs  # noqa: F401 (pytest fixture)
from talkgen_core.cli import main
from talkgen_core.models.demo import DEMO_STUDENT_FILE, DEMO_WEIGHT_FILES, WEIGHTS_DIR, build_demo_networks
from talkgen_core.pipeline import load_demo_models
from talkgen_core.sampling.presets import get_sampling_preset


@pytest.fixture
def weights_with_student(tmp_path, monkeypatch):
    """The shipped files plus a 'student' that is the base DiT with its last head bias moved (so it differs)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in DEMO_WEIGHT_FILES.values():
        shutil.copy(WEIGHTS_DIR / name, folder / name)
    state = load_file(str(WEIGHTS_DIR / DEMO_WEIGHT_FILES["dit"]))
    state["head.head.bias"] = state["head.head.bias"] + 0.5
    save_file(state, str(folder / DEMO_STUDENT_FILE))
    monkeypatch.setattr(demo, "WEIGHTS_DIR", folder)
    return folder


def test_the_student_loads_its_own_weights_and_preset(weights_with_student):
    base = build_demo_networks(weights_dir=weights_with_student)
    student = build_demo_networks(weights_dir=weights_with_student, variant="distilled")
    assert student.sampling_preset == "demo-distilled" and base.sampling_preset is None
    delta = student.dit.head.head.bias - base.dit.head.head.bias
    assert float(delta.min()) == pytest.approx(0.5) and float(delta.max()) == pytest.approx(0.5)
    models = load_demo_models(weights_dir=weights_with_student, variant="distilled")
    assert models.names["dit"] == "demo-distilled" and models.sampling_preset == "demo-distilled"


def test_generate_runs_the_student_one_pass_per_step(inputs, tmp_path, weights_with_student):
    steps = get_sampling_preset("demo-distilled").steps
    student = _generate(inputs, tmp_path, "--demo-model", "distilled")
    base = _generate(inputs, tmp_path, "--seed", "1")
    assert student["dit_forwards"] == steps * student["chunks"]  # no guidance pass
    assert base["dit_forwards"] == 4 * 2 * base["chunks"]  # the demo preset: 4 steps, audio guidance
    named = _generate(inputs, tmp_path, "--demo-model", "distilled", "--steps", "2", "--audio-cfg", "1")
    assert named["dit_forwards"] == 2 * named["chunks"]  # explicit settings still win


def test_a_missing_student_or_a_real_model_is_refused(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="distilled demo model needs"):
        build_demo_networks(weights_dir=tmp_path, variant="distilled")
    with pytest.raises(ValueError, match="choose one of"):
        build_demo_networks(variant="tiny")
    assert main(["generate", "--image", "x.png", "--audio", "a.wav", "--out", str(tmp_path / "o.mp4"),
                 "--demo-model", "distilled", "--model", "m.safetensors", "--vae", "v.pth",
                 "--audio-encoder", "w.bin"]) != 0
