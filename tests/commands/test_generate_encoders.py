"""``generate --text-encoder --prompt --clip-vision``: the prompt's and the reference frame's states reach the DiT.

Tiny umT5 / CLIP files under ComfyUI's key names, 64 wide like the demo DiT's text_dim and clip_dim."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from helpers.pack_import import REPO_ROOT  # noqa: E402
from helpers.tiny_encoders import save_clip_vision_files, save_umt5_files  # noqa: E402
from talkgen_core import cli  # noqa: E402
from talkgen_core.encoders import load_clip_vision, load_text_encoder  # noqa: E402
from talkgen_core.models.dit import WanDiT  # noqa: E402
from talkgen_core.sampling.references import StillReference, to_pixels  # noqa: E402

EXAMPLES = REPO_ROOT / "example_inputs"
PROMPT = "a woman smiles and talks to the camera"
NEGATIVE = "static blurred details"


@pytest.fixture(scope="module")
def encoder_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoders")
    _, text = save_umt5_files(folder, d_model=64)
    _, clip = save_clip_vision_files(folder, hidden=64)
    return text["fp8"], clip["fp16"]


def _generate(tmp_path, *extra: str) -> int:
    return cli.main(["generate", "--image", str(EXAMPLES / "face.png"), "--audio", str(EXAMPLES / "speech2.wav"),
                     "--out", str(tmp_path / "talk.mp4"), "--size", "64x64", "--steps", "1", "--chunk-frames", "49",
                     "--threads", "1", *extra])


def test_prompt_negative_prompt_and_image_tokens_reach_the_dit(tmp_path, encoder_files, monkeypatch):
    text_file, clip_file = encoder_files
    seen: list[dict] = []
    forward = WanDiT.forward

    def recording(self, x, t, context, cond, clip_fea=None, **kwargs):
        seen.append({"context": context.detach().float().clone(),
                     "clip_fea": None if clip_fea is None else clip_fea.detach().float().clone()})
        return forward(self, x, t, context, cond, clip_fea, **kwargs)

    monkeypatch.setattr(WanDiT, "forward", recording)
    assert _generate(tmp_path, "--text-encoder", str(text_file), "--prompt", PROMPT, "--negative-prompt", NEGATIVE,
                     "--clip-vision", str(clip_file), "--text-cfg", "2", "--audio-cfg", "2") == 0
    assert (tmp_path / "talk.mp4").stat().st_size > 0 and seen

    text = load_text_encoder(text_file)
    prompt, negative = text.encode(PROMPT, 16), text.encode(NEGATIVE, 16)  # the demo DiT's text_len is 16
    rows = [row for call in seen for row in call["context"]]  # [L, 64] per CFG branch
    assert any(torch.allclose(row[: prompt.shape[1]], prompt[0], atol=1e-6) for row in rows)
    assert any(torch.allclose(row[: negative.shape[1]], negative[0], atol=1e-6) for row in rows)

    reference = StillReference(to_pixels(EXAMPLES / "face.png"), (64, 64)).image  # the frame the chunk uses
    tokens = load_clip_vision(clip_file)(reference)
    assert all(call["clip_fea"] is not None and torch.allclose(call["clip_fea"], tokens.expand_as(call["clip_fea"]),
                                                                atol=1e-5) for call in seen)


def test_prompt_without_text_encoder_is_refused(tmp_path, capsys):
    assert _generate(tmp_path, "--prompt", PROMPT) == 2
    assert "need a text encoder" in capsys.readouterr().err


def test_a_text_encoder_of_the_wrong_width_is_named(tmp_path, capsys):
    _, paths = save_umt5_files(tmp_path, d_model=32)
    assert _generate(tmp_path, "--text-encoder", str(paths["fp16"]), "--prompt", PROMPT) == 1
    assert "32-wide states but the DiT takes 64" in capsys.readouterr().err
