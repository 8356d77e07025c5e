"""CLIP vision from ComfyUI-layout files (fp16 and scaled fp8) against transformers' own model, on a tiny config;
the shapes-to-config rules on the real ViT-H and umT5-XXL shapes."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("transformers")

from helpers.tiny_encoders import save_clip_vision_files  # noqa: E402
from talkgen_core.encoders import load_clip_vision  # noqa: E402
from talkgen_core.encoders.clip_vision import CLIP_MEAN, CLIP_STD, clip_pixels  # noqa: E402
from talkgen_core.encoders.conditioning import clip_vision_encoder  # noqa: E402
from talkgen_core.encoders.keymaps import clip_vision_config, umt5_config  # noqa: E402

FP8_TOLERANCE = 0.08  # relative L2 error of the tokens from fp8 weights; measured 0.019 on this tiny model


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return save_clip_vision_files(tmp_path_factory.mktemp("clip"))


def _frame(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # [3, H, W] in [-1, 1]


def _penultimate(model, frame: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values=clip_pixels(frame, 28), output_hidden_states=True).hidden_states[-2]


def _rounded(model, dtype=torch.float16):
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.copy_(p.to(dtype).float())
    return twin


def test_fp16_file_gives_the_penultimate_states_exactly(clip):
    model, paths = clip
    assert "visual_projection.weight" in load_file(str(paths["fp16"]))  # ComfyUI's file has it; unused
    encoder = load_clip_vision(paths["fp16"])
    got = encoder(_frame())
    assert got.shape == (1, 5, 32)  # class token + 2 x 2 patches (ViT-H: 1 + 16 x 16 = 257)
    torch.testing.assert_close(got, _penultimate(_rounded(model), _frame()), rtol=0, atol=1e-6)


def test_penultimate_is_the_output_of_all_but_the_last_block_without_post_norm(clip):
    """Independent of hidden_states' indexing: a model cut to its first L-1 blocks gives the same tokens."""
    from transformers import CLIPVisionModel

    model, paths = clip
    config = copy.deepcopy(model.config)
    config.num_hidden_layers -= 1
    cut = CLIPVisionModel(config).eval()
    own = {k.split("vision_model.", 1)[-1]: v for k, v in _rounded(model).state_dict().items()}
    cut.load_state_dict({k: own[k.split("vision_model.", 1)[-1]] for k in cut.state_dict()})
    with torch.no_grad():
        want = cut(pixel_values=clip_pixels(_frame(), 28)).last_hidden_state
    torch.testing.assert_close(load_clip_vision(paths["fp16"])(_frame()), want, rtol=0, atol=1e-6)


def test_scaled_fp8_file_is_close(clip):
    model, paths = clip
    raw = load_file(str(paths["fp8"]))
    assert raw["vision_model.encoder.layers.0.mlp.fc1.weight"].dtype == torch.float8_e4m3fn
    got = load_clip_vision(paths["fp8"])(_frame())
    want = _penultimate(model, _frame())
    error = ((got - want).norm() / want.norm()).item()
    assert 0 < error < FP8_TOLERANCE, error


def test_pixels_follow_the_official_preprocessing():
    grey = torch.zeros(3, 30, 50)  # 0 in [-1, 1] is mid grey
    pixels = clip_pixels(grey, 224)
    assert pixels.shape == (1, 3, 224, 224)
    want = (0.5 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(pixels[0, :, 100, 7], want)
    left_right = torch.cat([-torch.ones(3, 10, 10), torch.ones(3, 10, 30)], dim=2)  # a squash, not a crop
    squashed = clip_pixels(left_right, 40)[0, 0]
    assert squashed[:, :8].mean() < 0 < squashed[:, 12:].mean()


def test_a_still_reference_is_encoded_once(clip):
    _, paths = clip
    encoder = load_clip_vision(paths["fp16"])
    first = encoder(_frame())
    assert encoder(_frame().clone()) is first
    assert not torch.equal(encoder(_frame(1)), first)


def test_width_is_checked_against_the_dit(clip):
    _, paths = clip
    with pytest.raises(ValueError, match="32-wide tokens but the DiT takes 1280"):
        clip_vision_encoder(paths["fp16"], clip_dim=1280)


def test_configs_from_the_real_shapes():
    """clip_vision_h and umt5_xxl shapes give the values of ComfyUI's clip_vision_config_h.json and
    umt5_config_xxl.json."""
    vit_h = {"embeddings.patch_embedding.weight": (1280, 3, 14, 14), "embeddings.position_embedding.weight": (257, 1280),
             "encoder.layers.0.mlp.fc1.weight": (5120, 1280), "encoder.layers.0.layer_norm1.weight": (1280,),
             "encoder.layers.31.layer_norm1.weight": (1280,)}
    config = clip_vision_config(vit_h)
    assert (config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"], config["image_size"],
            config["intermediate_size"], config["patch_size"]) == (1280, 16, 32, 224, 5120, 14)
    xxl = {"shared.weight": (256384, 4096),
           "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": (32, 64),
           "encoder.block.0.layer.0.SelfAttention.q.weight": (4096, 4096),
           "encoder.block.0.layer.1.DenseReluDense.wi_0.weight": (10240, 4096),
           **{f"encoder.block.{i}.layer.0.layer_norm.weight": (4096,) for i in range(24)}}
    comfy = {"d_ff": 10240, "d_kv": 64, "d_model": 4096, "num_heads": 64, "num_layers": 24, "vocab_size": 256384,
             "relative_attention_num_buckets": 32, "layer_norm_epsilon": 1e-06}
    derived = umt5_config(xxl)
    assert {k: derived[k] for k in comfy} == comfy


def test_comfyui_json_configs_agree_when_comfyui_is_here():
    import os
    from pathlib import Path

    root = os.environ.get("COMFYUI_DIR")
    if not root or not (Path(root) / "comfy" / "clip_vision_config_h.json").is_file():
        pytest.skip("COMFYUI_DIR not set")
    h = json.loads((Path(root) / "comfy" / "clip_vision_config_h.json").read_text())
    assert (h["hidden_size"], h["num_attention_heads"], h["num_hidden_layers"], h["hidden_act"], h["layer_norm_eps"]) \
        == (1280, 16, 32, "gelu", 1e-5)
    t5 = json.loads((Path(root) / "comfy" / "text_encoders" / "umt5_config_xxl.json").read_text())
    assert (t5["num_heads"], t5["d_kv"], t5["dense_act_fn"], t5["is_gated_act"]) == (64, 64, "gelu_pytorch_tanh", True)


def test_official_wan_layout_reads_like_comfyui_s(clip, tmp_path):
    """models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth names (its visual.* part; fused qkv, batch dims),
    written from the same weights, next to a text tower that is left out."""
    _, paths = clip
    comfy = load_file(str(paths["fp16"]))
    inner = {k[len("vision_model."):]: v for k, v in comfy.items() if k.startswith("vision_model.")}
    official = {"visual.cls_embedding": inner["embeddings.class_embedding"].reshape(1, 1, -1),
                "visual.pos_embedding": inner["embeddings.position_embedding.weight"][None],
                "visual.patch_embedding.weight": inner["embeddings.patch_embedding.weight"],
                "visual.head": torch.zeros(32, 16, dtype=torch.float16),
                "textual.token_embedding.weight": torch.ones(4, 8, dtype=torch.float16)}
    for part in ("weight", "bias"):
        official[f"visual.pre_norm.{part}"] = inner[f"pre_layrnorm.{part}"]
        official[f"visual.post_norm.{part}"] = inner[f"post_layernorm.{part}"]
        for i in range(3):
            layer = f"encoder.layers.{i}."
            block = f"visual.transformer.{i}."
            official[block + f"attn.to_qkv.{part}"] = torch.cat([inner[layer + f"self_attn.{p}_proj.{part}"]
                                                                 for p in "qkv"])
            official[block + f"attn.proj.{part}"] = inner[layer + f"self_attn.out_proj.{part}"]
            for n in "12":
                official[block + f"norm{n}.{part}"] = inner[layer + f"layer_norm{n}.{part}"]
            official[block + f"mlp.0.{part}"] = inner[layer + f"mlp.fc1.{part}"]
            official[block + f"mlp.2.{part}"] = inner[layer + f"mlp.fc2.{part}"]
    torch.save(official, tmp_path / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")
    got = load_clip_vision(tmp_path / "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")(_frame())
    torch.testing.assert_close(got, load_clip_vision(paths["fp16"])(_frame()), rtol=0, atol=0)
