"""Tiny umT5 / CLIP-vision models built with transformers and saved under ComfyUI's key names (fp16, and
scaled fp8 as ComfyUI's legacy ``scaled_fp8`` files), with a tiny sentencepiece tokenizer inside."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from safetensors.torch import save_file

CORPUS = ["a person is talking to the camera", "the man speaks calmly", "a woman smiles and talks",
          "bright tones overexposed static blurred details", "hello world this is a test"] * 20
FP8_MAX = 448.0


def tiny_spiece_model(vocab_size: int = 40) -> bytes:
    """A sentencepiece model trained on a few sentences, with umT5's special ids (pad 0, </s> 1, unk 2)."""
    import sentencepiece

    buffer = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=buffer,
                                             vocab_size=vocab_size, model_type="unigram", pad_id=0, eos_id=1,
                                             unk_id=2, bos_id=-1, minloglevel=2)
    return buffer.getvalue()


def tiny_umt5(d_model: int = 32, vocab_size: int = 48, seed: int = 0):
    """A seeded transformers UMT5EncoderModel (2 blocks, 4 heads, 48 tokens) in float32."""
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    config = UMT5Config(vocab_size=vocab_size, d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model, num_layers=2,
                        num_heads=4, feed_forward_proj="gated-gelu", is_encoder_decoder=False, dropout_rate=0.0)
    return UMT5EncoderModel(config).eval()  # transformers' own (seeded) init: activations of a realistic scale


def tiny_clip_vision(hidden: int = 32, layers: int = 3, seed: int = 0):
    """A seeded transformers CLIPVisionModelWithProjection (28 px, patch 14 -> 5 tokens) in float32."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                              num_attention_heads=max(1, hidden // 64), image_size=28, patch_size=14,
                              hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=16)
    return CLIPVisionModelWithProjection(config).eval()


def comfy_umt5_state(model) -> dict[str, torch.Tensor]:
    """ComfyUI's umT5 keys: transformers' names without the tied ``encoder.embed_tokens.weight``."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}


def comfy_clip_vision_state(model) -> dict[str, torch.Tensor]:
    """ComfyUI's clip_vision_h keys: ``vision_model.*`` plus ``visual_projection.weight``, whatever prefix this
    transformers version gives its modules."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("visual_projection."):
            state[key] = value
            continue
        inner = key.split("vision_model.", 1)[-1]
        state["vision_model." + inner] = value
    return {k: v.detach().clone().contiguous() for k, v in state.items() if not k.endswith("position_ids")}


def scaled_fp8(state: dict[str, torch.Tensor], quantise) -> dict[str, torch.Tensor]:
    """ComfyUI's legacy scaled fp8: each weight named by ``quantise(key)`` becomes float8_e4m3fn with a float32
    ``scale_weight`` (max |w| -> 448) and a ``scale_input`` of 1; a ``scaled_fp8`` marker tensor is added."""
    out = {"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}
    for key, value in state.items():
        if quantise(key):
            module = key[: -len(".weight")]
            scale = (value.float().abs().amax() / FP8_MAX).reshape(())
            out[key] = (value.float() / scale).to(torch.float8_e4m3fn)
            out[module + ".scale_weight"] = scale.float()
            out[module + ".scale_input"] = torch.ones((), dtype=torch.float32)
        else:
            out[key] = value.half() if value.is_floating_point() else value
    return out


def is_umt5_linear(key: str) -> bool:
    return key.startswith("encoder.block.") and key.endswith(".weight") and ("SelfAttention." in key and
                                                                             "relative" not in key or
                                                                             "DenseReluDense." in key)


def is_clip_linear(key: str) -> bool:
    return ".encoder.layers." in key and key.endswith("_proj.weight") or key.endswith(("fc1.weight", "fc2.weight"))


def save_umt5_files(folder: Path, d_model: int = 32) -> tuple[object, dict[str, Path]]:
    """(the float32 reference model, {"fp16": path, "fp8": path}) with the tokenizer inside both files."""
    spiece = torch.frombuffer(bytearray(tiny_spiece_model()), dtype=torch.uint8)
    model = tiny_umt5(d_model)
    state = comfy_umt5_state(model)
    paths = {"fp16": folder / "umt5_tiny_fp16.safetensors", "fp8": folder / "umt5_tiny_fp8_e4m3fn_scaled.safetensors"}
    save_file({**{k: v.half() for k, v in state.items()}, "spiece_model": spiece}, str(paths["fp16"]))
    save_file({**scaled_fp8(state, is_umt5_linear), "spiece_model": spiece}, str(paths["fp8"]))
    return model, paths


def save_clip_vision_files(folder: Path, hidden: int = 32) -> tuple[object, dict[str, Path]]:
    model = tiny_clip_vision(hidden)
    state = comfy_clip_vision_state(model)
    paths = {"fp16": folder / "clip_vision_tiny.safetensors", "fp8": folder / "clip_vision_tiny_fp8_scaled.safetensors"}
    save_file({k: v.half() for k, v in state.items()}, str(paths["fp16"]))
    save_file(scaled_fp8(state, is_clip_linear), str(paths["fp8"]))
    return model, paths
