"""Loading wav2vec2 weights from the layouts found in the wild, onto ``Wav2Vec2Model``.

Accepted, detected from the keys (never from the file name):
* Hugging Face ``Wav2Vec2Model`` / ``Wav2Vec2ForPreTraining`` files (``pytorch_model.bin`` through
  ``torch.load(weights_only=True)``, or safetensors), keys with or without the ``wav2vec2.`` prefix;
  pre-training heads (quantizer, project_q, project_hid) and CTC heads are dropped.
* ComfyUI's repack: prefix stripped, fp16.
* The positional conv's weight norm under either name: ``weight_g``/``weight_v`` (older files) or
  ``parametrizations.weight.original0``/``original1`` (current torch).
Tensors are cast to the model's dtype. Missing or mis-shaped keys raise with the likely cause.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from talkgen_core.models.checkpoint import load_state_dict_file

from .wav2vec2 import Wav2Vec2Model

log = logging.getLogger(__name__)

ANCHOR_KEY = "feature_extractor.conv_layers.0.conv.weight"
HEAD_PREFIXES = ("quantizer.", "project_q.", "project_hid.", "lm_head.", "classifier.", "projector.")
LEGACY_WEIGHT_NORM = {
    "encoder.pos_conv_embed.conv.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv_embed.conv.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
}
OPTIONAL_KEYS = frozenset({"masked_spec_embed"})  # training-only; absent from some repacks


@dataclass(frozen=True)
class Wav2Vec2LoadReport:
    prefix: str  # what was stripped ("" or "wav2vec2.")
    dropped: tuple[str, ...]  # pre-training / task heads that were ignored
    missing_optional: tuple[str, ...]
    source_dtypes: tuple[str, ...]


def canonical_wav2vec2_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Strip the model prefix, drop heads and rename legacy weight-norm keys -> (state, prefix, dropped)."""
    anchors = [k for k in state if k.endswith(ANCHOR_KEY)]
    if len(anchors) != 1:
        raise ValueError(
            f"not a wav2vec2 checkpoint: expected exactly one key ending in {ANCHOR_KEY!r}, found {len(anchors)}"
        )
    prefix = anchors[0][: -len(ANCHOR_KEY)]
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        name = key[len(prefix):] if key.startswith(prefix) else key
        if name.startswith(HEAD_PREFIXES):
            dropped.append(key)
        elif key.startswith(prefix):
            out[LEGACY_WEIGHT_NORM.get(name, name)] = value
        else:
            out[key] = value  # outside the model prefix and not a known head: reported as unexpected
    return out, prefix, dropped


def load_wav2vec2_weights(
    model: Wav2Vec2Model, source: str | Path | dict[str, torch.Tensor]
) -> Wav2Vec2LoadReport:
    """Load a weight file (or an in-memory state dict) into ``model`` in place; strict on shapes."""
    name = str(source) if not isinstance(source, dict) else "state dict"
    state = load_state_dict_file(source) if not isinstance(source, dict) else source
    state, prefix, dropped = canonical_wav2vec2_state_dict(state)
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ValueError(
            f"{name} has keys this wav2vec2 model does not know: {unexpected[:6]}; "
            "is it a different architecture (e.g. wav2vec2-large with per-layer conv norms)?"
        )
    missing = sorted(set(expected) - set(state))
    required_missing = [k for k in missing if k not in OPTIONAL_KEYS]
    if required_missing:
        raise ValueError(f"{name} lacks {len(required_missing)} wav2vec2 keys, e.g. {required_missing[:4]}")
    for key, value in state.items():
        want = expected[key].shape
        if value.shape != want:
            width = state["feature_projection.projection.weight"].shape[0]
            raise ValueError(
                f"{name}: {key} has shape {tuple(value.shape)}, the model expects {tuple(want)} (checkpoint "
                f"hidden size {width}, model {model.config.hidden_size}); build the matching config "
                "(chinese-wav2vec2-base is 768 wide, 12 layers)"
            )
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values()})
    target = next(model.parameters()).dtype
    with torch.no_grad():
        model.load_state_dict({k: v.to(target) for k, v in state.items()}, strict=False)
    if dropped:
        log.info("%s: ignored %d pre-training/head keys", name, len(dropped))
    return Wav2Vec2LoadReport(prefix, tuple(dropped), tuple(missing), tuple(dtypes))


def wav2vec2_config_name(source: str | Path | dict[str, torch.Tensor]) -> str:
    """The registered config ("chinese-wav2vec2-base", "tiny", "demo") whose shapes match a weight file."""
    from .encoder_configs import WAV2VEC2_CONFIGS

    state = load_state_dict_file(source) if not isinstance(source, dict) else source
    shapes = {k: tuple(v.shape) for k, v in canonical_wav2vec2_state_dict(state)[0].items()}
    for name, config in WAV2VEC2_CONFIGS.items():
        with torch.device("meta"):
            expected = Wav2Vec2Model(config).state_dict()
        if all(shapes.get(k) == tuple(v.shape) for k, v in expected.items() if k not in OPTIONAL_KEYS):
            return name
    width = shapes.get("feature_projection.projection.weight", ("?",))[0]
    raise ValueError(
        f"{source if not isinstance(source, dict) else 'state dict'}: a wav2vec2 file of hidden size {width} that "
        f"matches no known config ({', '.join(WAV2VEC2_CONFIGS)}); talkgen needs chinese-wav2vec2-base"
    )
