"""The in-process queue with ``prompt`` / ``text_encoder`` / ``clip_vision`` columns (paths relative to the
manifest): the prompt reaches the DiT, and a prompt without a text encoder fails that job before it runs."""

from __future__ import annotations

import shutil

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from helpers.pack_import import REPO_ROOT  # noqa: E402
from helpers.tiny_encoders import save_clip_vision_files, save_umt5_files  # noqa: E402
from talkgen_core.cli import main  # noqa: E402
from talkgen_core.encoders import load_text_encoder  # noqa: E402
from talkgen_core.models.dit import WanDiT  # noqa: E402
from talkgen_core.queue.manifest import read_manifest  # noqa: E402

EXAMPLES = REPO_ROOT / "example_inputs"
PROMPT = "a man speaks calmly"


@pytest.fixture()
def folder(tmp_path):
    shutil.copy(EXAMPLES / "face.png", tmp_path / "face.png")
    shutil.copy(EXAMPLES / "speech2.wav", tmp_path / "speech.wav")
    (tmp_path / "models").mkdir()
    save_umt5_files(tmp_path / "models", d_model=64)
    save_clip_vision_files(tmp_path / "models", hidden=64)
    return tmp_path


def test_prompt_columns_reach_the_dit(folder, monkeypatch):
    (folder / "jobs.csv").write_text(
        "image,audio,output,prompt,text_encoder,clip_vision,size,steps,chunk_frames,threads\n"
        f"face.png,speech.wav,talk,{PROMPT},models/umt5_tiny_fp16.safetensors,models/clip_vision_tiny.safetensors,"
        "64x64,1,49,1\n")
    job = read_manifest(folder / "jobs.csv")[0]
    assert not job.problems and job.settings["text_encoder"] == str(folder / "models" / "umt5_tiny_fp16.safetensors")
    contexts: list[torch.Tensor] = []
    forward = WanDiT.forward

    def recording(self, x, t, context, cond, clip_fea=None, **kwargs):
        contexts.append(context.detach().float().clone())
        assert clip_fea is not None and clip_fea.shape[1:] == (5, 64)
        return forward(self, x, t, context, cond, clip_fea, **kwargs)

    monkeypatch.setattr(WanDiT, "forward", recording)
    assert main(["queue", str(folder / "jobs.csv"), "--output-dir", str(folder / "out")]) == 0
    assert (folder / "out" / "talk.mp4").stat().st_size > 0
    want = load_text_encoder(folder / "models" / "umt5_tiny_fp16.safetensors").encode(PROMPT, 16)[0]
    assert contexts and all(torch.allclose(c[0, : want.shape[0]], want, atol=1e-6) for c in contexts)


def test_a_prompt_without_text_encoder_or_a_missing_file_fails_the_job_first(folder, capsys):
    (folder / "jobs.csv").write_text("image,audio,output,prompt,clip_vision\n"
                                     f"face.png,speech.wav,a,{PROMPT},\n"
                                     "face.png,speech.wav,b,,models/absent.safetensors\n")
    jobs = read_manifest(folder / "jobs.csv")
    assert "clip_vision file not found" in jobs[1].problems[0]
    assert main(["queue", str(folder / "jobs.csv"), "--output-dir", str(folder / "out"), "--dry-run"]) == 1
    assert "need a text encoder" in capsys.readouterr().out
