"""Reading a text or image encoder's weight file, plain or ComfyUI "scaled fp8", into tensors of one dtype.

Scaled fp8 comes in two forms, both written by ComfyUI's tools:

* legacy (``umt5_xxl_fp8_e4m3fn_scaled.safetensors``): a ``scaled_fp8`` marker tensor; each quantised linear
  has ``<module>.weight`` in float8_e4m3fn and ``<module>.scale_weight``, a float32 scalar; some also a
  ``<module>.scale_input`` (only used by fp8 x fp8 matmuls, ignored here);
* current: ``<module>.weight_scale`` plus ``<module>.comfy_quant``, JSON bytes such as
  ``{"format": "float8_e4m3fn"}`` (or the same per layer in the header's ``_quantization_metadata``).

A weight is dequantised as ComfyUI's per-tensor fp8 layout does, ``weight.float() * scale``, then cast to the
compute dtype; other quantised formats (nvfp4, mxfp8, int8) are refused by name. Tensors are read one at a
time, so the peak is the converted model plus one tensor, not two copies of the file. A ``spiece_model`` uint8
tensor (the sentencepiece tokenizer that ComfyUI's umT5 files carry) is returned as bytes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from talkgen_core.models.checkpoint import SAFETENSORS_SUFFIXES, CheckpointError, load_state_dict_file
from talkgen_core.models.file_checks import non_finite_keys, non_finite_message, safetensors_problem
from talkgen_core.models.layers import dequantize

TOKENIZER_KEY = "spiece_model"
FP8_FORMATS = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}
_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_IGNORED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")
_MARKERS = ("scaled_fp8",)


@dataclass
class EncoderWeights:
    tensors: dict[str, torch.Tensor]  # every weight, in the requested dtype (integer tensors as stored)
    tokenizer_model: bytes | None  # the serialized sentencepiece model, when the file carries one
    dequantised: int  # how many fp8 weights were multiplied by their scale


@contextlib.contextmanager
def _tensors(path: Path) -> Iterator[tuple[list[str], Callable[[str], torch.Tensor], dict[str, str]]]:
    """(keys, key -> tensor, header metadata) of a weight file, read lazily for safetensors."""
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        state = load_state_dict_file(path)
        yield list(state), state.__getitem__, {}
        return
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            yield list(f.keys()), f.get_tensor, dict(f.metadata() or {})
    except SafetensorError as exc:
        raise CheckpointError(safetensors_problem(path, exc)) from exc


def _layer_formats(keys: list[str], get: Callable[[str], torch.Tensor], metadata: dict[str, str]) -> dict[str, str]:
    """``{module: quantisation format}`` from ``comfy_quant`` tensors or the header's metadata."""
    formats = {}
    if "_quantization_metadata" in metadata:
        for layer, conf in json.loads(metadata["_quantization_metadata"]).get("layers", {}).items():
            formats[layer] = conf.get("format", "")
    for key in keys:
        if key.endswith(".comfy_quant"):
            formats[key[: -len(".comfy_quant")]] = json.loads(bytes(get(key).tolist())).get("format", "")
    return formats


def read_encoder_weights(path: str | Path, dtype: torch.dtype, device: str | torch.device = "cpu",
                         what: str = "encoder", keep: Callable[[str], bool] | None = None) -> EncoderWeights:
    """Every weight of ``path`` in ``dtype`` on ``device`` (fp8 ones dequantised by their scales), and its
    tokenizer. ``keep``: which keys to read (default all), e.g. only the image tower of a two-tower file.

    Raises ``CheckpointError`` naming the file for a damaged file, an unsupported quantisation and for NaN /
    infinite tensors; ``what`` names the slot in those messages.
    """
    path = Path(path)
    with _tensors(path) as (keys, get, metadata):
        formats = _layer_formats(keys, get, metadata)
        unsupported = sorted({f for f in formats.values() if f not in FP8_FORMATS})
        if unsupported:
            raise CheckpointError(f"{path}: the {what} is quantised as {', '.join(unsupported)}, which talkgen "
                                  "cannot read; use the fp16 or the fp8 (e4m3fn) scaled file")
        scales = {key[: -len(suffix)]: get(key) for key in keys for suffix in _SCALE_SUFFIXES if key.endswith(suffix)}
        tensors, tokenizer_model, dequantised = {}, None, 0
        for key in keys:
            if key.endswith(_SCALE_SUFFIXES + _IGNORED_SUFFIXES) or key in _MARKERS or (keep and not keep(key)):
                continue
            tensor = get(key)
            if key == TOKENIZER_KEY:
                tokenizer_model = tensor.numpy().tobytes()
                continue
            tensor = tensor.to(device)
            if tensor.is_floating_point():
                scale = scales.get(key[: -len(".weight")]) if key.endswith(".weight") else None
                scale = None if scale is None else scale.to(device)
                dequantised += scale is not None
                tensor = dequantize(tensor, scale, torch.float32).to(dtype) if scale is not None else tensor.to(dtype)
                if non_finite_keys({key: tensor}):
                    raise CheckpointError(non_finite_message(path, [key]))
            tensors[key] = tensor
    return EncoderWeights(tensors, tokenizer_model, dequantised)
