"""The command line's public interface: every command has --help; doctor reports what it finds."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from talkgen_core.cli import COMMANDS


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "talkgen_core", *args], capture_output=True, text=True, timeout=120)


def test_the_public_commands_exist():
    assert {"doctor", "demo", "generate", "check-model", "queue"} <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command):
    done = _cli(command, "--help")
    assert done.returncode == 0, done.stderr
    assert f"usage: python -m talkgen_core {command}" in done.stdout


def test_doctor_names_what_each_model_file_is(tmp_path):
    save_file({"decoder.middle.0.residual.0.gamma": torch.ones(4, 1, 1, 1)}, str(tmp_path / "some_vae.safetensors"))
    save_file({"blocks.0.lora_down.weight": torch.ones(2, 4)}, str(tmp_path / "style.safetensors"))
    done = _cli("doctor", "--models-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "torch" in done.stdout and "2 weight file(s)" in done.stdout
    assert "some_vae.safetensors (0.0 MiB, vae)" in done.stdout and "style.safetensors (0.0 MiB, lora)" in done.stdout
