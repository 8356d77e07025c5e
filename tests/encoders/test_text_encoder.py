"""umT5 from ComfyUI-layout files (fp16 and scaled fp8) against transformers' own model, on a tiny config."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")

from helpers.tiny_encoders import comfy_umt5_state, is_umt5_linear, save_umt5_files, scaled_fp8, tiny_spiece_model  # noqa: E402
from talkgen_core.encoders import EncoderPackageMissing, KeyLayoutError, UMT5Tokenizer, load_text_encoder  # noqa: E402
from talkgen_core.encoders.conditioning import DEFAULT_NEGATIVE_PROMPT, prompt_states  # noqa: E402
from talkgen_core.encoders.weights import read_encoder_weights  # noqa: E402
from talkgen_core.models.checkpoint import CheckpointError  # noqa: E402

PROMPT = "a person is  talking to the camera "
FP8_TOLERANCE = 0.08  # relative L2 error of the states from fp8 weights; measured 0.037 on this tiny model


@pytest.fixture(scope="module")
def umt5(tmp_path_factory):
    return save_umt5_files(tmp_path_factory.mktemp("umt5"))


def _states(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).last_hidden_state


def _with_weights(model, state: dict[str, torch.Tensor]):
    """A copy of ``model`` holding ``state`` (e.g. the file's weights, dequantised) in float32."""
    twin = copy.deepcopy(model)
    twin.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    twin.encoder.embed_tokens.weight = twin.shared.weight
    return twin


def test_fp16_file_gives_transformers_states_exactly(umt5):
    model, paths = umt5
    encoder = load_text_encoder(paths["fp16"], dtype=torch.float32)
    ids = encoder.tokenizer(PROMPT)
    got = encoder.encode(PROMPT)
    assert got.shape == (1, len(ids), 32) and got.dtype == torch.float32 and ids[-1] == 1
    want = _states(_with_weights(model, load_file(str(paths["fp16"]))), ids)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert (got - _states(model, ids)).abs().max() < 2e-2  # fp16 rounding of the weights only


def test_scaled_fp8_file_is_dequantised_by_its_scales(umt5):
    model, paths = umt5
    encoder = load_text_encoder(paths["fp8"], dtype=torch.float32)
    ids = encoder.tokenizer(PROMPT)
    raw = load_file(str(paths["fp8"]))
    assert raw["encoder.block.0.layer.0.SelfAttention.q.weight"].dtype == torch.float8_e4m3fn
    dequantised = {k: v.float() * raw[k[: -len(".weight")] + ".scale_weight"] if v.dtype == torch.float8_e4m3fn
                   else v for k, v in raw.items() if k in comfy_umt5_state(model)}
    got = encoder.encode(PROMPT)
    torch.testing.assert_close(got, _states(_with_weights(model, dequantised), ids), rtol=0, atol=1e-5)
    want = _states(model, ids)
    error = ((got - want).norm() / want.norm()).item()
    assert 0 < error < FP8_TOLERANCE
    assert read_encoder_weights(paths["fp8"], torch.float32).dequantised == 14  # 7 linears x 2 blocks


def test_current_fp8_form_reads_like_the_legacy_one(umt5, tmp_path):
    _, paths = umt5
    legacy = load_file(str(paths["fp8"]))
    current = {}
    for key, value in legacy.items():
        if key.endswith(".scale_weight"):
            layer = key[: -len(".scale_weight")]
            current[layer + ".weight_scale"] = value
            current[layer + ".comfy_quant"] = torch.tensor(list(b'{"format": "float8_e4m3fn"}'), dtype=torch.uint8)
        elif not key.endswith(".scale_input") and key != "scaled_fp8":
            current[key] = value
    save_file(current, str(tmp_path / "current.safetensors"))
    a = read_encoder_weights(paths["fp8"], torch.float32).tensors
    b = read_encoder_weights(tmp_path / "current.safetensors", torch.float32).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_other_quantised_formats_are_refused_by_name(umt5, tmp_path):
    _, paths = umt5
    state = load_file(str(paths["fp16"]))
    state["encoder.block.0.layer.0.SelfAttention.q.comfy_quant"] = torch.tensor(list(b'{"format": "nvfp4"}'),
                                                                               dtype=torch.uint8)
    save_file(state, str(tmp_path / "nvfp4.safetensors"))
    with pytest.raises(CheckpointError, match="nvfp4"):
        load_text_encoder(tmp_path / "nvfp4.safetensors")


def test_padding_with_a_mask_changes_no_real_token(umt5):
    """The official code pads to 512 and masks; encoding the real tokens alone gives the same states."""
    model, paths = umt5
    ids = load_text_encoder(paths["fp16"]).tokenizer(PROMPT)
    padded = torch.tensor([ids + [0] * 9])
    mask = torch.tensor([[1] * len(ids) + [0] * 9])
    with torch.no_grad():
        states = model(input_ids=padded, attention_mask=mask).last_hidden_state[:, : len(ids)]
    torch.testing.assert_close(states, _states(model, ids), rtol=0, atol=1e-6)


def test_tokenizer_cleans_truncates_and_ends_with_eos(umt5, tmp_path):
    tokenizer = UMT5Tokenizer(tiny_spiece_model())
    assert tokenizer("a  person\n\tis talking &amp; ") == tokenizer("a person is talking &")
    short = tokenizer(PROMPT, max_tokens=5)
    assert len(short) == 5 and short[-1] == 1 and short[:4] == tokenizer(PROMPT)[:4]
    assert tokenizer("") == [1]
    (tmp_path / "spiece.model").write_bytes(tiny_spiece_model())
    assert UMT5Tokenizer.from_path(tmp_path)(PROMPT) == tokenizer(PROMPT)


def test_a_file_without_tokenizer_needs_one(umt5, tmp_path):
    model, _ = umt5
    save_file({k: v.half() for k, v in comfy_umt5_state(model).items()}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="--tokenizer"):
        load_text_encoder(tmp_path / "bare.safetensors")
    (tmp_path / "spiece.model").write_bytes(tiny_spiece_model())
    encoder = load_text_encoder(tmp_path / "bare.safetensors", tokenizer=tmp_path / "spiece.model")
    assert encoder.encode(PROMPT).shape[1] == len(encoder.tokenizer(PROMPT))


def test_keys_under_a_prefix_load_too(umt5, tmp_path):
    _, paths = umt5
    prefixed = {("spiece_model" if k == "spiece_model" else f"text_encoders.umt5xxl.transformer.{k}"): v
                for k, v in load_file(str(paths["fp16"])).items()}
    save_file(prefixed, str(tmp_path / "prefixed.safetensors"))
    a = load_text_encoder(paths["fp16"], dtype=torch.float32).encode(PROMPT)
    b = load_text_encoder(tmp_path / "prefixed.safetensors", dtype=torch.float32).encode(PROMPT)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_wrong_files_are_named(umt5, tmp_path):
    model, _ = umt5
    save_file({"vision_model.embeddings.class_embedding": torch.zeros(8)}, str(tmp_path / "clip.safetensors"))
    with pytest.raises(KeyLayoutError, match="clip.safetensors.*not a umT5"):
        load_text_encoder(tmp_path / "clip.safetensors")
    state = comfy_umt5_state(model)
    del state["encoder.block.1.layer.1.DenseReluDense.wo.weight"]
    save_file({k: v.half() for k, v in state.items()}, str(tmp_path / "cut.safetensors"))
    with pytest.raises(KeyLayoutError, match="lacks 'encoder.block.1.layer.1.DenseReluDense.wo.weight'"):
        load_text_encoder(tmp_path / "cut.safetensors", tokenizer=None)


def test_prompt_states_default_negative_and_width_check(umt5):
    _, paths = umt5
    encoder = load_text_encoder(paths["fp16"], dtype=torch.float32)
    context, negative = prompt_states(encoder, PROMPT, None, text_dim=32)
    torch.testing.assert_close(context, encoder.encode(PROMPT))
    torch.testing.assert_close(negative, encoder.encode(DEFAULT_NEGATIVE_PROMPT))
    empty, _ = prompt_states(encoder, None, "", text_dim=32, max_tokens=16)
    assert empty.shape == (1, 1, 32)  # the official "" prompt: </s> alone
    with pytest.raises(ValueError, match="32-wide states but the DiT takes 4096"):
        prompt_states(encoder, PROMPT, None, text_dim=4096)


def test_missing_transformers_names_the_extra(umt5, monkeypatch):
    _, paths = umt5
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    with pytest.raises(EncoderPackageMissing, match=r"talkgen\[encoders\]"):
        load_text_encoder(paths["fp16"])


def test_scaled_fp8_helper_quantises_only_linears(umt5):
    model, _ = umt5
    state = scaled_fp8(comfy_umt5_state(model), is_umt5_linear)
    assert state["shared.weight"].dtype == torch.float16
    assert state["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].dtype == torch.float16
    assert state["encoder.block.1.layer.1.DenseReluDense.wo.weight"].dtype == torch.float8_e4m3fn


def test_official_wan_layout_reads_like_comfyui_s(umt5, tmp_path):
    """models_t5_umt5-xxl-enc-bf16.pth names (wan/modules/t5.py), written from the same weights."""
    _, paths = umt5
    official_names = {"shared.weight": "token_embedding.weight", "encoder.final_layer_norm.weight": "norm.weight"}
    for i in range(2):
        block = f"encoder.block.{i}.layer."
        official_names.update({
            block + "0.layer_norm.weight": f"blocks.{i}.norm1.weight",
            **{block + f"0.SelfAttention.{p}.weight": f"blocks.{i}.attn.{p}.weight" for p in "qkvo"},
            block + "0.SelfAttention.relative_attention_bias.weight": f"blocks.{i}.pos_embedding.embedding.weight",
            block + "1.layer_norm.weight": f"blocks.{i}.norm2.weight",
            block + "1.DenseReluDense.wi_0.weight": f"blocks.{i}.ffn.gate.0.weight",
            block + "1.DenseReluDense.wi_1.weight": f"blocks.{i}.ffn.fc1.weight",
            block + "1.DenseReluDense.wo.weight": f"blocks.{i}.ffn.fc2.weight",
        })
    state = load_file(str(paths["fp16"]))
    official = {official_names[k]: v.bfloat16() for k, v in state.items() if k != "spiece_model"}
    assert len(official) == len(official_names)
    torch.save(official, tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    (tmp_path / "spiece.model").write_bytes(state["spiece_model"].numpy().tobytes())
    got = load_text_encoder(tmp_path / "models_t5_umt5-xxl-enc-bf16.pth", dtype=torch.float32,
                            tokenizer=tmp_path).encode(PROMPT)
    comfy = {k: v.bfloat16() for k, v in state.items() if k != "spiece_model"}
    save_file({**comfy, "spiece_model": state["spiece_model"]}, str(tmp_path / "comfy_bf16.safetensors"))
    torch.testing.assert_close(got, load_text_encoder(tmp_path / "comfy_bf16.safetensors", dtype=torch.float32)
                               .encode(PROMPT), rtol=0, atol=0)
