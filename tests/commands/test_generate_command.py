"""``python -m talkgen_core generate`` with real checkpoint files (tiny ones saved in the official layouts)."""

from __future__ import annotations

import subprocess
import sys

import torch
from safetensors.torch import save_file

from helpers.demo_workflow import make_demo_lora, save_demo_as_checkpoints
from helpers.pack_import import REPO_ROOT

EXAMPLES = REPO_ROOT / "example_inputs"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkgen_core", "generate", *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=300)


def test_generate_runs_real_checkpoint_files_with_a_lora(tmp_path):
    save_demo_as_checkpoints(tmp_path)
    lora = make_demo_lora(tmp_path / "lora.safetensors")
    out = tmp_path / "talk.mp4"
    done = _run("--image", str(EXAMPLES / "face.png"), "--audio", str(EXAMPLES / "speech2.wav"), "--out", str(out),
                "--model", str(tmp_path / "base.safetensors"), "--model", str(tmp_path / "adapter.safetensors"),
                "--vae", str(tmp_path / "vae.safetensors"), "--audio-encoder", str(tmp_path / "wav2vec2.safetensors"),
                "--lora", f"{lora}:0.5", "--size", "64x64", "--steps", "2", "--text-cfg", "1", "--audio-cfg", "2",
                "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert "100 frames" in done.stdout and out.stat().st_size > 0  # 4.0 s at 25 fps


def test_generate_names_the_missing_checkpoint_option(tmp_path):
    done = _run("--image", str(EXAMPLES / "face.png"), "--audio", str(EXAMPLES / "speech2.wav"),
                "--out", str(tmp_path / "x.mp4"), "--model", str(tmp_path / "base.safetensors"))
    assert done.returncode == 2 and "missing --vae, --audio-encoder" in done.stderr


def test_generate_says_which_file_is_wrong(tmp_path):
    save_file({"encoder.conv1.weight": torch.zeros(4, 3, 3, 3, 3)}, str(tmp_path / "not_a_dit.safetensors"))
    done = _run("--image", str(EXAMPLES / "face.png"), "--audio", str(EXAMPLES / "speech2.wav"),
                "--out", str(tmp_path / "x.mp4"), "--model", str(tmp_path / "not_a_dit.safetensors"),
                "--vae", str(tmp_path / "v.safetensors"), "--audio-encoder", str(tmp_path / "w.safetensors"))
    assert done.returncode == 2 and "not_a_dit.safetensors" in done.stderr
