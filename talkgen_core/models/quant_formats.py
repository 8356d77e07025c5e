"""Quantised InfiniteTalk weight layouts, each turned into the official keys plus one scale per layer.

One function per family (the facts and where they come from: ``docs/distilled_checkpoints.md``):

* ComfyUI scaled fp8: ``<m>.weight`` fp8, ``<m>.scale_weight`` per tensor, optional ``<m>.scale_input`` and a
  ``scaled_fp8`` marker;
* MeiGen ``quant_models`` (optimum-quanto, weights only): ``<m>.weight._data`` int8 or fp8 e4m3fn,
  ``<m>.weight._scale`` ``[out, 1]`` in the layer's float dtype, and ``<m>.input_scale`` / ``<m>.output_scale``
  scalars that stay 1 when activations are not quantised; ``<file>.json`` beside it maps each layer to its qtype;
* LightX2V: ``<m>.weight`` int8 (or fp8 e4m3fn) with ``<m>.weight_scale`` float32 ``[out, 1]`` (absmax / 127
  per output channel), the block linears only; the audio adapter comes as a second file in the same layout.

Each returns a :class:`QuantSplit`: the weights under the official keys, codes kept in their stored dtype, and
the scales by module name. ``layers.dequantize`` multiplies a layer's weight by its scale when the layer runs,
so int8 and fp8 stay 8-bit in memory. SoulX-FlashTalk ships plain bf16 weights in the diffusers layout; only
its name is found here (:func:`diffusers_family`). Functions take safetensors headers (``TensorSpec``) or
tensors alike, so ``check-model`` and the loader read the same layout.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

COMFYUI_FP8 = "ComfyUI scaled fp8"
MEIGEN_QUANTO = "MeiGen InfiniteTalk {kind} (optimum-quanto)"
LIGHTX2V = "LightX2V distilled {kind} (weight_scale per output channel)"
SOULX_FLASHTALK = "SoulX-FlashTalk (diffusers WanModel with the InfiniteTalk audio adapter built in)"

COMFYUI_MARKERS = ("scaled_fp8",)
QUANTO_DATA, QUANTO_SCALE = ".weight._data", ".weight._scale"
QUANTO_EXTRAS = (".input_scale", ".output_scale")
LIGHTX2V_SCALE = ".weight_scale"
QUANTO_WEIGHT_QTYPES = ("qint8", "qfloat8", "qfloat8_e4m3fn", "qfloat8_e5m2")
_AUDIO_CONFIG_KEYS = ("audio_window", "context_tokens", "norm_output_audio")  # InfiniteTalk WanModel options


@dataclass
class QuantSplit:
    """A file's entries sorted into weights (official keys), per-layer scales and entries the loader skips."""

    weights: dict[str, Any] = field(default_factory=dict)
    scales: dict[str, Any] = field(default_factory=dict)  # module name -> [1] per tensor or [out, 1] per channel
    integer_modules: set[str] = field(default_factory=set)  # modules whose int8 codes this family scales
    ignored: list[str] = field(default_factory=list)
    family: str | None = None


def _dtype(value: Any) -> str:
    """'int8', 'float8_e4m3fn', ... of a tensor or a ``TensorSpec``."""
    return str(value.dtype).removeprefix("torch.")


def _kind(codes: Iterable[Any]) -> str:
    dtypes = {_dtype(v) for v in codes}
    return "int8" if dtypes == {"int8"} else "fp8" if dtypes and all("float8" in d for d in dtypes) else "mixed"


def _require_pairs(what: str, codes: Mapping[str, Any], scales: Mapping[str, Any], code_key: str,
                   scale_key: str) -> None:
    from talkgen_core.models.checkpoint import CheckpointError

    lone = sorted(set(codes) ^ set(scales))
    if lone:
        has = code_key if lone[0] in codes else scale_key
        needs = scale_key if has == code_key else code_key
        raise CheckpointError(f"{what}: {lone[0]}{has} has no {lone[0]}{needs} ({len(lone)} such layers); the file "
                              "is incomplete or was edited: download it again")


def split_comfyui_fp8(mapping: Mapping[str, Any]) -> QuantSplit:
    """``<m>.scale_weight`` kept by module; ``scale_input`` (for fp8 x fp8 matmuls, which talkgen does not do: it
    de-scales the weight and computes in bf16 / fp16) and the format marker are skipped."""
    out = QuantSplit()
    for key, value in mapping.items():
        if key.endswith(".scale_weight"):
            out.scales[key[: -len(".scale_weight")]] = value
        elif key.endswith(".scale_input") or key.split(".")[-1] in COMFYUI_MARKERS:
            out.ignored.append(key)
        else:
            out.weights[key] = value
    out.family = COMFYUI_FP8 if out.scales or out.ignored else None
    return out


def split_meigen_quanto(mapping: Mapping[str, Any], what: str = "the file") -> QuantSplit:
    """optimum-quanto's frozen layers back to ``<m>.weight`` codes + ``<m>`` scale.

    ``input_scale`` / ``output_scale`` are skipped; tensors that hold values (not headers) must be 1 there, i.e.
    weight-only quantisation, since activation-quantised (W8A8) files would need quantised matmuls.
    """
    from talkgen_core.models.checkpoint import CheckpointError

    out, codes = QuantSplit(), {}
    for key, value in mapping.items():
        if key.endswith(QUANTO_DATA):
            codes[key[: -len(QUANTO_DATA)]] = value
        elif key.endswith(QUANTO_SCALE):
            out.scales[key[: -len(QUANTO_SCALE)]] = value
        elif key.endswith(QUANTO_EXTRAS):
            if isinstance(value, torch.Tensor) and value.device.type != "meta" and not bool((value == 1).all()):
                raise CheckpointError(f"{what}: {key} is {value.flatten()[:1].tolist()}, not 1: this quanto file "
                                      "also quantises activations (W8A8), which talkgen cannot run; use MeiGen's "
                                      "weight-only int8 / fp8 files or the bf16 release")
            out.ignored.append(key)
        else:
            out.weights[key] = value
    _require_pairs(what, codes, out.scales, QUANTO_DATA, QUANTO_SCALE)
    for module, value in codes.items():
        out.weights[f"{module}.weight"] = value
        if _dtype(value) == "int8":
            out.integer_modules.add(module)
    out.family = MEIGEN_QUANTO.format(kind=_kind(codes.values()))
    return out


def split_lightx2v(mapping: Mapping[str, Any], what: str = "the file") -> QuantSplit:
    """LightX2V's ``<m>.weight`` codes stay where they are; ``<m>.weight_scale`` becomes the scale of ``<m>``."""
    out = QuantSplit()
    for key, value in mapping.items():
        if key.endswith(LIGHTX2V_SCALE):
            out.scales[key[: -len(LIGHTX2V_SCALE)]] = value
        else:
            out.weights[key] = value
    codes = {m: out.weights[f"{m}.weight"] for m in out.scales if f"{m}.weight" in out.weights}
    _require_pairs(what, codes, out.scales, ".weight", LIGHTX2V_SCALE)
    out.integer_modules = {m for m, v in codes.items() if _dtype(v) == "int8"}
    out.family = LIGHTX2V.format(kind=_kind(codes.values()))
    return out


def split_quantised(mapping: Mapping[str, Any], what: str = "the file") -> QuantSplit:
    """The family a (prefix-stripped) file's keys belong to, applied; plain float files pass through."""
    keys = list(mapping)
    if any(k.endswith(QUANTO_DATA) for k in keys):
        return split_meigen_quanto(mapping, what)
    if any(k.endswith(LIGHTX2V_SCALE) for k in keys):
        return split_lightx2v(mapping, what)
    return split_comfyui_fp8(mapping)


def quanto_map_problem(path: str | Path) -> str | None:
    """What is wrong with the quantisation map beside a quanto file (``<stem>.json``), None when it is fine or
    absent (the map is optional here: the codes' dtype says int8 or fp8)."""
    map_path = Path(path).with_suffix(".json")
    if not map_path.is_file():
        return None
    try:
        layers = json.loads(map_path.read_text())
    except (OSError, ValueError) as exc:
        return f"{map_path} is not a quanto quantisation map: {exc}"
    if not isinstance(layers, dict):
        return f"{map_path} is not a quanto quantisation map (expected one object per layer)"
    for name, entry in layers.items():
        weights = entry.get("weights") if isinstance(entry, dict) else None
        activations = entry.get("activations", "none") if isinstance(entry, dict) else None
        if activations != "none":
            return (f"{map_path}: layer {name!r} quantises activations ({activations}); talkgen runs weight-only "
                    "files: use MeiGen's int8 / fp8 weight-only files or the bf16 release")
        if weights not in QUANTO_WEIGHT_QTYPES + ("none",):
            known = ", ".join(QUANTO_WEIGHT_QTYPES)
            return f"{map_path}: layer {name!r} has weights {weights!r}; talkgen reads {known}"
    return None


def diffusers_family(files: Iterable[Path], keys: Iterable[str]) -> str | None:
    """SoulX-FlashTalk's name for a plain file set that holds the base and the audio adapter together and sits
    beside a diffusers ``config.json`` of the InfiniteTalk WanModel (its audio options), else None.

    Only the layout is checked: any diffusers save of a merged InfiniteTalk model looks the same.
    """
    from talkgen_core.models.checkpoint import classify_keys

    keys = list(keys)
    if classify_keys(keys) != "dit" or not any(k.startswith("audio_proj.") for k in keys):
        return None
    for folder in dict.fromkeys(Path(f).parent for f in files):
        config_path = folder / "config.json"
        try:
            config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        except (OSError, ValueError):
            continue
        if isinstance(config, dict) and config.get("_class_name") == "WanModel" and all(
            k in config for k in _AUDIO_CONFIG_KEYS
        ):
            return SOULX_FLASHTALK
    return None
