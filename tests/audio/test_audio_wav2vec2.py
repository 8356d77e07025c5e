"""wav2vec2: Hugging Face parity (recorded reference), key layout of the base model, weight layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from talkgen_core.audio import WAV2VEC2_CONFIGS, build_wav2vec2, get_wav2vec2_config, load_wav2vec2_weights
from talkgen_core.audio.wav2vec2 import Wav2Vec2Model

REFERENCE = Path(__file__).parent / "data" / "hf_tiny_reference.safetensors"


def base_keys_from_reference_notes() -> dict[str, tuple[int, ...]]:
    """chinese-wav2vec2-base keys and shapes as listed in the reference notes (comfyui_native.md 1.4)."""
    keys = {
        "masked_spec_embed": (768,),
        "feature_extractor.conv_layers.0.conv.weight": (512, 1, 10),
        "feature_extractor.conv_layers.0.layer_norm.weight": (512,),
        "feature_extractor.conv_layers.0.layer_norm.bias": (512,),
        "feature_projection.layer_norm.weight": (512,),
        "feature_projection.layer_norm.bias": (512,),
        "feature_projection.projection.weight": (768, 512),
        "feature_projection.projection.bias": (768,),
        "encoder.pos_conv_embed.conv.bias": (768,),
        "encoder.pos_conv_embed.conv.parametrizations.weight.original0": (1, 1, 128),
        "encoder.pos_conv_embed.conv.parametrizations.weight.original1": (768, 48, 128),
        "encoder.layer_norm.weight": (768,),
        "encoder.layer_norm.bias": (768,),
    }
    for i in range(1, 7):
        keys[f"feature_extractor.conv_layers.{i}.conv.weight"] = (512, 512, 3 if i < 5 else 2)
    for i in range(12):
        p = f"encoder.layers.{i}."
        for proj in ("q", "k", "v", "out"):
            keys[p + f"attention.{proj}_proj.weight"] = (768, 768)
            keys[p + f"attention.{proj}_proj.bias"] = (768,)
        for norm in ("layer_norm", "final_layer_norm"):
            keys[p + f"{norm}.weight"] = (768,)
            keys[p + f"{norm}.bias"] = (768,)
        keys[p + "feed_forward.intermediate_dense.weight"] = (3072, 768)
        keys[p + "feed_forward.intermediate_dense.bias"] = (3072,)
        keys[p + "feed_forward.output_dense.weight"] = (768, 3072)
        keys[p + "feed_forward.output_dense.bias"] = (768,)
    return keys


def test_base_state_dict_is_exactly_the_hf_base_layout():
    with torch.device("meta"):
        model = Wav2Vec2Model(get_wav2vec2_config("chinese-wav2vec2-base"))
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == base_keys_from_reference_notes()
    assert sum(v.numel() for v in model.state_dict().values()) == pytest.approx(94.4e6, rel=2e-3)
    cfg = model.config
    assert (cfg.frame_stride, cfg.receptive_field) == (320, 400)


def test_named_configs_match_the_dit_audio_widths():
    for name, (layers, dim) in {"tiny": (4, 32), "demo": (4, 64), "chinese-wav2vec2-base": (12, 768)}.items():
        cfg = WAV2VEC2_CONFIGS[name]
        assert (cfg.num_layers, cfg.hidden_size) == (layers, dim)
        assert (cfg.frame_stride, cfg.receptive_field) == (320, 400)  # same 50 Hz front end
    with pytest.raises(ValueError, match="valid names: chinese-wav2vec2-base, demo, tiny"):
        get_wav2vec2_config("wav2vec2-large")


@pytest.fixture(scope="module")
def reference():
    tensors = load_file(str(REFERENCE))
    weights = {k: v for k, v in tensors.items() if not k.startswith(("input.", "expected."))}
    return weights, tensors


def test_matches_hugging_face_transformers_hidden_states(reference):
    """Reference produced by transformers' Wav2Vec2Model (see data/make_hf_reference.py)."""
    weights, tensors = reference
    model = build_wav2vec2("tiny")
    report = load_wav2vec2_weights(model, weights)
    assert report.prefix == "wav2vec2." and report.dropped == ("quantizer.codevectors",)
    wave = tensors["input.waveform"][None]  # [1, 20800] = 1.3 s
    with torch.inference_mode():
        torch.testing.assert_close(model(wave)[0], tensors["expected.native"], rtol=0, atol=2e-5)  # 50 Hz
        # conv features interpolated to the video frame count before the transformer (official order)
        torch.testing.assert_close(model(wave, num_frames=32)[0], tensors["expected.fps25"], rtol=0, atol=2e-5)
        torch.testing.assert_close(model(wave, num_frames=39)[0], tensors["expected.fps30"], rtol=0, atol=2e-5)


def _hf_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Older Hugging Face file: ``wav2vec2.`` prefix, weight_g/weight_v, a pre-training head."""
    out = {}
    for k, v in state.items():
        k = k.replace("parametrizations.weight.original0", "weight_g")
        k = k.replace("parametrizations.weight.original1", "weight_v")
        out["wav2vec2." + k] = v.clone()
    out["project_q.weight"] = torch.randn(4, 8)
    out["quantizer.weight_proj.weight"] = torch.randn(8, 32)
    return out


def test_tiny_model_saved_in_every_layout_loads_identically(tmp_path):
    torch.manual_seed(7)
    source = build_wav2vec2("tiny")
    # fp16-representable weights, so the fp16 ComfyUI repack holds exactly the same values
    state = {k: v.half().float() for k, v in source.state_dict().items()}
    hf = _hf_layout(state)
    torch.save(hf, tmp_path / "pytorch_model.bin")
    save_file(hf, str(tmp_path / "model.safetensors"))
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(tmp_path / "wav2vec2_fp16.safetensors"))

    wave = torch.randn(1, 8000) * 0.2
    outputs = []
    for name in ("pytorch_model.bin", "model.safetensors", "wav2vec2_fp16.safetensors"):
        model = build_wav2vec2("tiny", weights=str(tmp_path / name))
        assert next(model.parameters()).dtype == torch.float32
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=f"{name}: {key}")
        with torch.inference_mode():
            outputs.append(model(wave, num_frames=12))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    torch.testing.assert_close(outputs[0], outputs[2], rtol=0, atol=0)
    assert outputs[0].shape == (1, 12, 4, 32)


def test_wrong_width_and_foreign_files_are_explained(tmp_path):
    demo = build_wav2vec2("demo")
    save_file(demo.state_dict(), str(tmp_path / "demo.safetensors"))
    with pytest.raises(ValueError, match="checkpoint hidden size 64, model 32"):
        build_wav2vec2("tiny", weights=str(tmp_path / "demo.safetensors"))
    save_file({"blocks.0.weight": torch.zeros(2)}, str(tmp_path / "dit.safetensors"))
    with pytest.raises(ValueError, match="not a wav2vec2 checkpoint"):
        build_wav2vec2("tiny", weights=str(tmp_path / "dit.safetensors"))
    state = dict(build_wav2vec2("tiny").state_dict())
    state["feature_extractor.conv_layers.3.layer_norm.weight"] = torch.ones(32)  # large-model style key
    with pytest.raises(ValueError, match="does not know"):
        load_wav2vec2_weights(build_wav2vec2("tiny"), state)
    del state["feature_extractor.conv_layers.3.layer_norm.weight"], state["encoder.layer_norm.bias"]
    with pytest.raises(ValueError, match="lacks 1 wav2vec2 keys"):
        load_wav2vec2_weights(build_wav2vec2("tiny"), state)
    del state["masked_spec_embed"]  # optional: some repacks drop it
    state["encoder.layer_norm.bias"] = torch.zeros(32)
    assert load_wav2vec2_weights(build_wav2vec2("tiny"), state).missing_optional == ("masked_spec_embed",)


def test_model_is_eval_and_frozen_and_conv_frame_count_formula():
    model = build_wav2vec2("tiny")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    cfg = model.config
    with torch.inference_mode():
        for n in (400, 719, 720, 16000, 16123):
            assert model.extract_features(torch.zeros(1, n)).shape[-1] == cfg.num_conv_frames(n)
    assert cfg.num_conv_frames(399) == 0
