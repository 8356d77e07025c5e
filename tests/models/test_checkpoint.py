"""Checkpoint layouts (official shards, ComfyUI single file, base + adapter, fp8 scaled, pickle), format
detection, wrong-file diagnostics and the check-model command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from helpers.dit_inputs import dit_inputs
from talkgen_core.cli import main as cli_main
from talkgen_core.models import build_dit
from talkgen_core.models.checkpoint import (
    CheckpointError,
    classify_keys,
    describe_checkpoint,
    load_dit,
    read_tensor_specs,
)

ADAPTER = re.compile(r"^(audio_proj\.|blocks\.\d+\.(audio_cross_attn|norm_x)\.)")


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in build_dit("tiny", seed=5).state_dict().items()}


def _assert_bit_exact(model, state):
    got = model.state_dict()
    assert set(got) == set(state)
    for key, value in state.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key


def _save_shards(state, folder: Path, shards: int = 3) -> Path:
    keys = sorted(state)
    weight_map = {}
    for i in range(shards):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return index


def test_official_shards_via_index_json_load_bit_exact(tiny_state, tmp_path):
    index = _save_shards(tiny_state, tmp_path)
    model = load_dit(index)
    _assert_bit_exact(model, tiny_state)
    assert model.config.name == "tiny"
    _assert_bit_exact(load_dit(tmp_path), tiny_state)  # the folder stands for its index
    with torch.no_grad():
        inputs = dit_inputs(model.config)
        torch.testing.assert_close(model(**inputs), build_dit("tiny", seed=5)(**inputs), atol=1e-6, rtol=1e-6)


def test_comfyui_single_file_with_prefix_loads_bit_exact(tiny_state, tmp_path):
    path = tmp_path / "wan_comfy.safetensors"
    combined = {f"model.diffusion_model.{k}": v for k, v in tiny_state.items()}
    combined["first_stage_model.decoder.conv_in.weight"] = torch.zeros(3)  # another component of the file
    save_file(combined, str(path))
    _assert_bit_exact(load_dit(path), tiny_state)
    report = describe_checkpoint(path)
    assert report.loads and report.config == "tiny"
    assert "comfyui single file" in report.files[0].layout
    assert any("1 keys outside 'model.diffusion_model.' ignored" in n for n in report.notes)


def test_base_plus_adapter_files_merge_bit_exact(tiny_state, tmp_path):
    base = {k: v for k, v in tiny_state.items() if not ADAPTER.match(k)}
    adapter = {k: v for k, v in tiny_state.items() if ADAPTER.match(k)}
    assert adapter and base
    save_file({f"model.diffusion_model.{k}": v for k, v in base.items()}, str(tmp_path / "base.safetensors"))
    save_file(adapter, str(tmp_path / "infinitetalk.safetensors"))
    _assert_bit_exact(load_dit([tmp_path / "base.safetensors", tmp_path / "infinitetalk.safetensors"]), tiny_state)
    assert classify_keys(adapter) == "adapter"


def test_stored_dtype_is_kept_and_sets_the_compute_dtype(tiny_state, tmp_path):
    path = tmp_path / "bf16.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in tiny_state.items()}, str(path))
    model = load_dit(path)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.compute_dtype == torch.bfloat16
    assert load_dit(path, compute_dtype=torch.float32).compute_dtype == torch.float32


def test_scaled_fp8_file_keeps_fp8_weights_and_applies_the_scales(tiny_state, tmp_path):
    fp8, reference = {}, dict(tiny_state)
    for key, value in tiny_state.items():
        if key.startswith("blocks.") and key.endswith(".weight") and value.dim() == 2:
            scale = value.abs().max() / 448.0
            q = (value / scale).to(torch.float8_e4m3fn)
            fp8[f"model.diffusion_model.{key}"] = q
            fp8[f"model.diffusion_model.{key[: -len('.weight')]}.scale_weight"] = scale.reshape(1)
            reference[key] = q.float() * scale
        else:
            fp8[f"model.diffusion_model.{key}"] = value
    fp8["model.diffusion_model.scaled_fp8"] = torch.zeros(2, dtype=torch.float8_e4m3fn)
    path = tmp_path / "fp8_scaled.safetensors"
    save_file(fp8, str(path))
    model = load_dit(path, compute_dtype=torch.float32)
    assert model.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn
    assert model.blocks[0].ffn[0].scale_weight is not None
    ref_model = build_dit("tiny", device="meta")
    ref_model.load_state_dict(reference, assign=True)
    inputs = dit_inputs(model.config)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs), ref_model(**inputs), atol=1e-5, rtol=1e-5)
    report = describe_checkpoint(path)
    assert report.loads and "float8_e4m3fn" in report.dtypes
    assert any("fp8" in note for note in report.notes)


def test_pickle_file_is_read_without_code_execution(tiny_state, tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"state_dict": tiny_state}, path)
    _assert_bit_exact(load_dit(path), tiny_state)


def _error(paths) -> str:
    with pytest.raises(CheckpointError) as err:
        load_dit(paths)
    return str(err.value)


def test_adapter_without_base_is_named(tiny_state, tmp_path):
    path = tmp_path / "infinitetalk_single.safetensors"
    save_file({k: v for k, v in tiny_state.items() if ADAPTER.match(k)}, str(path))
    message = _error(path)
    assert "audio adapter" in message and "base model" in message


def test_base_without_adapter_lists_missing_keys(tiny_state, tmp_path):
    path = tmp_path / "wan_i2v.safetensors"
    save_file({k: v for k, v in tiny_state.items() if not ADAPTER.match(k)}, str(path))
    message = _error([path])
    assert "missing keys (first: audio_proj.norm.bias" in message
    assert "without the audio adapter" in message
    report = describe_checkpoint(path, config="tiny")
    assert not report.loads and "missing" in report.problem


def test_t2v_and_wan22_models_are_recognised(tiny_state, tmp_path):
    no_image = {k: v for k, v in tiny_state.items() if not (k.startswith("img_emb") or "_img" in k)}
    t2v = dict(no_image, **{"patch_embedding.weight": torch.zeros(64, 16, 1, 2, 2)})
    save_file(t2v, str(tmp_path / "t2v.safetensors"))
    assert "text-to-video" in _error(tmp_path / "t2v.safetensors")
    save_file(no_image, str(tmp_path / "wan22.safetensors"))
    assert "Wan 2.2" in _error(tmp_path / "wan22.safetensors")


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        (["encoder.downsamples.0.residual.0.gamma", "decoder.upsamples.0.residual.0.gamma", "conv1.weight"], "VAE"),
        (["feature_extractor.conv_layers.0.conv.weight", "encoder.layers.0.attention.q_proj.weight"], "wav2vec2"),
        (["diffusion_model.blocks.0.self_attn.q.lora_down.weight"], "LoRA"),
    ],
)
def test_other_model_files_are_named(keys, words, tmp_path):
    path = tmp_path / "picked.safetensors"
    save_file({k: torch.zeros(2, 2) for k in keys}, str(path))
    assert words in _error(path)
    assert words in describe_checkpoint(path).problem


def test_wrong_shape_is_reported_with_both_shapes(tiny_state, tmp_path):
    bad = dict(tiny_state, **{"blocks.1.ffn.0.weight": torch.zeros(256, 64)})
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=r"blocks.1.ffn.0.weight file \[256, 64\] vs model \[128, 64\]"):
        load_dit(tmp_path / "bad.safetensors", config="tiny")


def test_missing_shard_and_missing_file_errors(tiny_state, tmp_path):
    index = _save_shards(tiny_state, tmp_path)
    (tmp_path / "diffusion_pytorch_model-00002-of-00003.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="00002-of-00003"):
        load_dit(index)
    with pytest.raises(FileNotFoundError):
        load_dit(tmp_path / "nope.safetensors")


def test_describe_reads_headers_and_reports_counts(tiny_state, tmp_path):
    index = _save_shards({k: v.half() for k, v in tiny_state.items()}, tmp_path)
    report = describe_checkpoint(index)
    assert len(report.files) == 3 and all(f.layout == "official shard" for f in report.files)
    assert report.parameters == sum(v.numel() for v in tiny_state.values())
    assert report.dtypes == {"float16": report.parameters}
    assert report.loads and report.config == "tiny"
    specs = read_tensor_specs(tmp_path / "diffusion_pytorch_model-00001-of-00003.safetensors")
    assert all(s.dtype == "float16" for s in specs.values())


def test_check_model_command(tiny_state, tmp_path, capsys):
    path = tmp_path / "tiny.safetensors"
    save_file(tiny_state, str(path))
    assert cli_main(["check-model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "config: tiny" in out and "loads: yes" in out and f"{sum(v.numel() for v in tiny_state.values()):,}" in out
    assert cli_main(["check-model", str(path), "--config", "demo"]) == 1
    assert "loads: no" in capsys.readouterr().out
    assert cli_main(["check-model", str(tmp_path / "missing.safetensors")]) == 2
