"""Quantised / distilled InfiniteTalk layouts (MeiGen optimum-quanto int8 / fp8, LightX2V int8, SoulX-FlashTalk):
tiny files written in each layout load, run like the float model and are named by check-model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from helpers.dit_inputs import dit_inputs
from talkgen_core.cli import main as cli_main
from talkgen_core.models import build_dit
from talkgen_core.models.checkpoint import CheckpointError, describe_checkpoint, load_dit
from talkgen_core.models.quant_formats import LIGHTX2V, MEIGEN_QUANTO, SOULX_FLASHTALK

ADAPTER = re.compile(r"^(audio_proj\.|blocks\.\d+\.(audio_cross_attn|norm_x)\.)")
LIGHTX2V_TARGETS = re.compile(r"^blocks\.\d+\.(self_attn|cross_attn|ffn|audio_cross_attn)\.")
FP8_MAX = 448.0
# Output error against the float model, as RMS of the difference over RMS of the output. Measured on the tiny DiT:
# about 0.01 for per-channel int8 (half a step of absmax / 127 per weight) and 0.055 for fp8 e4m3 (3 mantissa
# bits); the bounds leave twice that.
RMS_TOLERANCE = {"int8": 0.02, "fp8": 0.1}


@pytest.fixture(scope="module")
def float_model() -> nn.Module:
    return build_dit("tiny", seed=5).eval()


@pytest.fixture(scope="module")
def tiny_state(float_model) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in float_model.state_dict().items()}


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def _per_channel(weight: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, scale [out, 1]) by absmax per output row, as both MeiGen (quanto) and LightX2V quantise."""
    absmax = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-5)
    if kind == "int8":
        scale = absmax / 127.0
        return (weight / scale).round().clamp(-128, 127).to(torch.int8), scale
    scale = absmax / FP8_MAX
    return (weight / scale).to(torch.float8_e4m3fn), scale


def _quanto_file(state, linears, kind: str, scale_dtype=torch.bfloat16):
    """MeiGen's layout: every linear as weight._data / weight._scale plus unit input / output scales; and the
    float reference those codes stand for."""
    out, reference = {}, dict(state)
    for key, value in state.items():
        name = key.removesuffix(".weight")
        if name not in linears or name == key:
            out[key] = value
            continue
        codes, scale = _per_channel(value, kind)
        scale = scale.to(scale_dtype)
        out[f"{name}.weight._data"], out[f"{name}.weight._scale"] = codes, scale
        out[f"{name}.input_scale"] = torch.ones((), dtype=scale_dtype)
        out[f"{name}.output_scale"] = torch.ones((), dtype=scale_dtype)
        reference[key] = codes.float() * scale.float()
    return out, reference


def _quanto_map(linears, kind: str, activations: str = "none") -> dict:
    qtype = "qint8" if kind == "int8" else "qfloat8_e4m3fn"
    return {name: {"weights": qtype, "activations": activations} for name in linears}


def _model_from(state: dict[str, torch.Tensor]) -> nn.Module:
    model = build_dit("tiny", device="meta")
    model.load_state_dict(state, assign=True)
    return model.eval()


def _rms_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt())


@pytest.mark.parametrize("kind", ["int8", "fp8"])
def test_meigen_quanto_file_loads_keeps_codes_and_matches_the_float_model(float_model, tiny_state, tmp_path, kind):
    linears = _linear_names(float_model)
    state, reference = _quanto_file(tiny_state, linears, kind)
    path = tmp_path / f"infinitetalk_single_{kind}.safetensors"
    save_file(state, str(path))
    path.with_suffix(".json").write_text(json.dumps(_quanto_map(linears, kind)))

    model = load_dit(path, compute_dtype=torch.float32)
    stored = torch.int8 if kind == "int8" else torch.float8_e4m3fn
    assert model.blocks[0].self_attn.q.weight.dtype == stored  # kept 8-bit in memory
    assert tuple(model.blocks[0].self_attn.q.scale_weight.shape) == (float_model.config.dim, 1)
    assert load_dit(path).compute_dtype == torch.bfloat16  # 8-bit storage computes in bf16 by default
    inputs = dit_inputs(model.config)
    with torch.no_grad():
        got = model(**inputs)
        torch.testing.assert_close(got, _model_from(reference)(**inputs), atol=1e-5, rtol=1e-5)
        assert _rms_error(got, float_model(**inputs)) < RMS_TOLERANCE[kind]

    report = describe_checkpoint(path)
    assert report.loads and report.config == "tiny", report.problem
    assert report.families == [MEIGEN_QUANTO.format(kind=kind)]
    assert any(f"{len(linears)} weights of {report.families[0]} carry a scale" in note for note in report.notes)


def test_quanto_activation_quantisation_is_refused_naming_the_map(float_model, tiny_state, tmp_path):
    linears = _linear_names(float_model)
    state, _ = _quanto_file(tiny_state, linears, "int8")
    path = tmp_path / "w8a8.safetensors"
    save_file(state, str(path))
    path.with_suffix(".json").write_text(json.dumps(_quanto_map(linears, "int8", activations="qint8")))
    report = describe_checkpoint(path)
    assert not report.loads and "quantises activations" in report.problem and "w8a8.json" in report.problem
    with pytest.raises(CheckpointError, match="quantises activations"):
        load_dit(path)
    path.with_suffix(".json").unlink()  # without a map the loader still sees the input scale
    save_file(dict(state, **{f"{linears[0]}.input_scale": torch.tensor(0.02)}), str(path))
    with pytest.raises(CheckpointError, match="W8A8"):
        load_dit(path)


def test_quanto_code_without_its_scale_is_named(float_model, tiny_state, tmp_path):
    state, _ = _quanto_file(tiny_state, _linear_names(float_model), "int8")
    del state["blocks.1.ffn.2.weight._scale"]
    path = tmp_path / "cut.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"ffn\.2\.weight\._data has no blocks\.1\.ffn\.2\.weight\._scale"):
        load_dit(path)
    assert "has no" in describe_checkpoint(path).problem


def _lightx2v_files(state, folder: Path) -> tuple[list[Path], dict[str, torch.Tensor]]:
    """LightX2V's distilled layout: the block linears int8 + float32 weight_scale, everything else float32; the
    audio adapter (audio_cross_attn linears quantised the same way) in its own file."""
    files = {"dit": {}, "adapter": {}}
    reference = dict(state)
    for key, value in state.items():
        part = files["adapter" if ADAPTER.match(key) else "dit"]
        if LIGHTX2V_TARGETS.match(key) and key.endswith(".weight") and value.ndim == 2:
            codes, scale = _per_channel(value, "int8")
            part[key], part[f"{key}_scale"] = codes, scale.float()
            reference[key] = codes.float() * scale
        else:
            part[key] = value.float()
    paths = [folder / "InfiniteTalk-4StepDistill-int8.safetensors", folder / "infinitetalk-int8.safetensors"]
    save_file(files["dit"], str(paths[0]))
    save_file(files["adapter"], str(paths[1]))
    return paths, reference


def test_lightx2v_int8_dit_plus_adapter_load_and_match_the_float_model(float_model, tiny_state, tmp_path):
    paths, reference = _lightx2v_files(tiny_state, tmp_path)
    model = load_dit(paths, compute_dtype=torch.float32)
    assert model.blocks[1].audio_cross_attn.kv_linear.weight.dtype == torch.int8
    assert model.blocks[1].ffn[0].scale_weight.dtype == torch.float32
    assert model.head.head.weight.dtype == torch.float32  # not a block linear: stays float
    inputs = dit_inputs(model.config, seed=3)
    with torch.no_grad():
        got = model(**inputs)
        torch.testing.assert_close(got, _model_from(reference)(**inputs), atol=1e-5, rtol=1e-5)
        assert _rms_error(got, float_model(**inputs)) < RMS_TOLERANCE["int8"]
    report = describe_checkpoint(paths)
    assert report.loads, report.problem
    assert [f.kind for f in report.files] == ["dit", "adapter"]
    assert report.families == [LIGHTX2V.format(kind="int8")]


def _flashtalk_folder(state, folder: Path, config: dict | None) -> Path:
    """SoulX-FlashTalk's DiT as diffusers saves it: bf16 shards with an index, base and adapter together."""
    keys = sorted(state)
    weight_map = {}
    for i in range(2):
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-00002.safetensors"
        part = {k: state[k].to(torch.bfloat16) for k in keys[i::2]}
        save_file(part, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


FLASHTALK_CONFIG = {"_class_name": "WanModel", "_diffusers_version": "0.33.1", "model_type": "i2v", "dim": 64,
                    "audio_window": 5, "context_tokens": 32, "norm_output_audio": True}


def test_soulx_flashtalk_folder_is_named_and_loads_bit_exact(tiny_state, tmp_path):
    folder = _flashtalk_folder(tiny_state, tmp_path, FLASHTALK_CONFIG)
    model = load_dit(folder)
    assert all(torch.equal(model.state_dict()[k], v.to(torch.bfloat16)) for k, v in tiny_state.items())
    report = describe_checkpoint(folder)
    assert report.loads and report.families == [SOULX_FLASHTALK]


@pytest.mark.parametrize("config", [None, {"_class_name": "WanModel", "model_type": "i2v", "dim": 64}])
def test_plain_wan_folders_are_not_called_flashtalk(tiny_state, tmp_path, config):
    """The official Wan2.1 config.json has no audio options; without any config.json nothing is claimed."""
    assert describe_checkpoint(_flashtalk_folder(tiny_state, tmp_path, config)).families == []


def test_check_model_names_each_family(float_model, tiny_state, tmp_path, capsys):
    quanto, _ = _quanto_file(tiny_state, _linear_names(float_model), "int8")
    save_file(quanto, str(tmp_path / "infinitetalk_single_int8.safetensors"))
    (tmp_path / "lightx2v").mkdir()
    lightx2v, _ = _lightx2v_files(tiny_state, tmp_path / "lightx2v")
    (tmp_path / "flashtalk").mkdir()
    flashtalk = _flashtalk_folder(tiny_state, tmp_path / "flashtalk", FLASHTALK_CONFIG)
    meigen = [tmp_path / "infinitetalk_single_int8.safetensors"]
    for files, name in [(meigen, "MeiGen InfiniteTalk int8 (optimum-quanto)"), (lightx2v, "LightX2V distilled int8"),
                        ([flashtalk], "SoulX-FlashTalk")]:
        assert cli_main(["check-model", *map(str, files)]) == 0
        out = capsys.readouterr().out
        assert "loads: yes" in out and f"format: {name}" in out, out
