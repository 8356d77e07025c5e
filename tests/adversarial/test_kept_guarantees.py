"""Attacks the pack already withstood, kept so they cannot come back: pickles in weight files never run code,
paths that climb out of the output folder are refused, and a render killed with SIGKILL at any point resumes
to exactly the video an uninterrupted run writes."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui
from talkgen_core.audio.encoder_configs import get_wav2vec2_config
from talkgen_core.audio.wav2vec2 import Wav2Vec2Model
from talkgen_core.audio.wav2vec2_weights import load_wav2vec2_weights
from talkgen_core.models.checkpoint import load_state_dict_file
from talkgen_core.models.vae import load_vae

EXAMPLES = REPO_ROOT / "example_inputs"


class _RunsCode:
    """A pickle payload that would create ``marker`` if anything unpickled it with code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _into_wav2vec2(path: Path):
    return load_wav2vec2_weights(Wav2Vec2Model(get_wav2vec2_config("tiny")), path)


@pytest.mark.parametrize("loader", [load_state_dict_file, load_vae, _into_wav2vec2], ids=["dit", "vae", "wav2vec2"])
def test_a_pickle_in_a_weight_file_never_runs(tmp_path, loader):
    marker = tmp_path / "pwned"
    weights = tmp_path / "model.pth"
    with open(weights, "wb") as f:
        pickle.dump({"weight": _RunsCode(marker)}, f)
    with pytest.raises(Exception) as caught:
        loader(weights)
    assert not marker.exists()
    assert "model.pth" in str(caught.value) or "code" in str(caught.value)


def test_output_names_that_climb_out_of_the_output_folder_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pack = import_pack_like_comfyui(tmp_path)
    for prefix in ("../escaped/video", "/etc/talkgen", "TalkGen/../../escaped"):
        with pytest.raises(ValueError, match="outside the output folder"):
            pack.nodes.host.next_output_path(prefix, "mp4")
    assert not (tmp_path / "escaped").exists()


def _generate(out: Path, job: Path, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "talkgen_core", "generate", "--image", str(EXAMPLES / "face.png"),
               "--audio", str(EXAMPLES / "speech.wav"), "--out", str(out), "--job-dir", str(job), "--resume"]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def _kill_when(process: subprocess.Popen, ready, timeout: float = 120.0) -> bool:
    """SIGKILL the process as soon as ``ready()`` holds; False when it finished first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.02)
    process.wait()
    return False


@pytest.mark.slow
def test_sigkill_at_every_stage_then_resume_gives_the_same_video(tmp_path):
    reference = tmp_path / "reference.mp4"
    assert _generate(reference, tmp_path / "reference-job").wait() == 0
    expected = reference.read_bytes()

    job, out = tmp_path / "job", tmp_path / "out.mp4"
    stages = {
        "while the audio is encoded": lambda: True,
        "after the first chunk": lambda: (job / "chunk_00000.safetensors").exists(),
        "after the last chunk, while writing": lambda: (job / "chunk_00001.safetensors").exists(),
    }
    for stage, ready in stages.items():
        process = _generate(out, job)
        killed = _kill_when(process, ready)
        if killed:
            assert not out.exists() or out.read_bytes() == expected, f"killed {stage}: a partial file at the output"
    assert _generate(out, job).wait() == 0
    assert out.read_bytes() == expected
