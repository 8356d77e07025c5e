"""ComfyUI's key layouts of the umT5-XXL and CLIP ViT-H vision files, mapped onto transformers' modules, and
the configs their shapes imply. Pure functions of key names and shapes (and tensor slicing for the official CLIP
layout): nothing here imports transformers.

umT5-XXL (``umt5_xxl_fp16.safetensors``, ``umt5_xxl_fp8_e4m3fn_scaled.safetensors``; ComfyUI's own T5 uses
transformers' names, so the map is the identity once any prefix is dropped)::

    shared.weight                                                   [256384, 4096]  token embedding
    encoder.block.{i}.layer.0.layer_norm.weight                     [4096]          i < 24
    encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight        [4096, 4096]    no biases
    encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight  [32, 64]  in every block (umT5)
    encoder.block.{i}.layer.1.layer_norm.weight                     [4096]
    encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1}.weight     [10240, 4096]   gated tanh-GELU
    encoder.block.{i}.layer.1.DenseReluDense.wo.weight              [4096, 10240]
    encoder.final_layer_norm.weight                                 [4096]
    spiece_model                                                    [N] uint8: the sentencepiece tokenizer

CLIP ViT-H/14 vision (``clip_vision_h.safetensors``; transformers' CLIPVisionModelWithProjection names)::

    vision_model.embeddings.class_embedding                         [1280]
    vision_model.embeddings.patch_embedding.weight                  [1280, 3, 14, 14]  no bias
    vision_model.embeddings.position_embedding.weight               [257, 1280]     224 / 14 = 16, 16^2 + 1
    vision_model.pre_layrnorm.{weight,bias}                         [1280]          (sic: transformers' name)
    vision_model.encoder.layers.{i}.layer_norm{1,2}.{weight,bias}   [1280]          i < 32
    vision_model.encoder.layers.{i}.self_attn.{q,k,v,out}_proj.{weight,bias}  [1280, 1280], [1280]
    vision_model.encoder.layers.{i}.mlp.fc1.{weight,bias}           [5120, 1280], [5120]
    vision_model.encoder.layers.{i}.mlp.fc2.{weight,bias}           [1280, 5120], [1280]
    vision_model.post_layernorm.{weight,bias}                       [1280]
    visual_projection.weight                                        [1024, 1280]    unused (Wan takes no pooled output)

umT5 is also read in the official Wan2.1 layout (``models_t5_umt5-xxl-enc-bf16.pth``: ``token_embedding``,
``blocks.{i}.{norm1,attn.{q,k,v,o},pos_embedding.embedding,norm2,ffn.{gate.0,fc1,fc2}}``, ``norm``), renamed by
:func:`official_umt5_name`. CLIP likewise in the official layout (``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``, ``visual.*``:
``cls_embedding``, ``pos_embedding``, ``patch_embedding``, ``pre_norm``, ``transformer.{i}.{norm1,attn.to_qkv,
attn.proj,norm2,mlp.0,mlp.2}``, ``post_norm``), by :func:`from_official_clip`. Both may be scaled fp8 (see :mod:`talkgen_core.encoders.weights`). A file's keys are matched to a module's
by the part after their own prefix (what precedes an anchor key), so a file saved with a prefix and a
transformers version whose module adds or drops one (``vision_model.``) both fit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Shape = Sequence[int]

UMT5_ANCHOR = "encoder.final_layer_norm.weight"
CLIP_VISION_ANCHOR = "embeddings.class_embedding"
TIED_KEYS = ("encoder.embed_tokens.weight",)  # transformers ties it to shared.weight
NON_WEIGHT_KEYS = ("spiece_model", "scaled_fp8")
# heads of the CLIP ViTs whose head width is not 64 (the rest: hidden / 64)
CLIP_HEADS_BY_WIDTH = {1280: 16, 1664: 16}
_UMT5_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.layer\.0\.layer_norm\.weight$")
_CLIP_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.layer_norm1\.weight$")


class KeyLayoutError(ValueError):
    """A weight file whose keys are not the layout asked for; the message names the file and what it holds."""


def prefix_before(keys: Iterable[str], anchor: str) -> str | None:
    """What precedes ``anchor`` in the shortest key ending with it ('' for bare keys); None when none does."""
    found = [key[: -len(anchor)] for key in keys if key == anchor or key.endswith("." + anchor)]
    return min(found, key=len) if found else None


def strip_prefix(keys: Iterable[str], prefix: str) -> dict[str, str]:
    """``{key without prefix: key}`` for the keys that start with ``prefix``."""
    return {key[len(prefix):]: key for key in keys if key.startswith(prefix)}


def map_keys(file_keys: Iterable[str], module_keys: Iterable[str], anchor: str, what: str,
             may_miss: Sequence[str] = ()) -> dict[str, str]:
    """``{file key: module key}`` for every module key, matched by the part after each side's prefix.

    File keys outside the prefix (``visual_projection.weight``, ``spiece_model``) are left out. Raises
    :class:`KeyLayoutError` naming ``what`` when the anchor is missing or a module key has no file key
    (apart from ``may_miss``, e.g. a tied embedding).
    """
    file_keys, module_keys = list(file_keys), list(module_keys)
    file_prefix = prefix_before(file_keys, anchor)
    if file_prefix is None:
        raise KeyLayoutError(f"{what} has no {anchor!r} key, so it is not this kind of model file")
    module_prefix = prefix_before(module_keys, anchor) or ""
    in_file = strip_prefix(file_keys, file_prefix)
    in_module = strip_prefix(module_keys, module_prefix)
    missing = sorted(k for k in in_module if k not in in_file and k not in may_miss)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise KeyLayoutError(f"{what} lacks {', '.join(repr(k) for k in missing[:3])}{more}: it is another model, "
                             "a different size, or an incomplete file")
    return {in_file[k]: module_key for k, module_key in in_module.items() if k in in_file}


# The official Wan2.1 encoder (models_t5_umt5-xxl-enc-bf16.pth, wan/modules/t5.py) -> ComfyUI's names. Its
# feed-forward is fc2(fc1(x) * gelu(gate(x))): gate.0 is transformers' activated wi_0, fc1 the linear wi_1.
_OFFICIAL_UMT5 = (
    (re.compile(r"^token_embedding\.weight$"), "shared.weight"),
    (re.compile(r"^norm\.weight$"), "encoder.final_layer_norm.weight"),
    (re.compile(r"^blocks\.(\d+)\.norm1\.weight$"), r"encoder.block.\1.layer.0.layer_norm.weight"),
    (re.compile(r"^blocks\.(\d+)\.attn\.([qkvo])\.weight$"), r"encoder.block.\1.layer.0.SelfAttention.\2.weight"),
    (re.compile(r"^blocks\.(\d+)\.pos_embedding\.embedding\.weight$"),
     r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias.weight"),
    (re.compile(r"^blocks\.(\d+)\.norm2\.weight$"), r"encoder.block.\1.layer.1.layer_norm.weight"),
    (re.compile(r"^blocks\.(\d+)\.ffn\.gate\.0\.weight$"), r"encoder.block.\1.layer.1.DenseReluDense.wi_0.weight"),
    (re.compile(r"^blocks\.(\d+)\.ffn\.fc1\.weight$"), r"encoder.block.\1.layer.1.DenseReluDense.wi_1.weight"),
    (re.compile(r"^blocks\.(\d+)\.ffn\.fc2\.weight$"), r"encoder.block.\1.layer.1.DenseReluDense.wo.weight"),
)


def is_official_umt5(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return "token_embedding.weight" in keys and "norm.weight" in keys


def official_umt5_name(key: str) -> str:
    """The ComfyUI / transformers name of an official Wan2.1 umT5 key (other keys unchanged)."""
    for pattern, replacement in _OFFICIAL_UMT5:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


# The official Wan2.1 open-clip ViT-H (models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, its visual.*
# part; the XLM-RoBERTa text tower in the same file is not used) -> ComfyUI's names.
_OFFICIAL_CLIP = (
    (re.compile(r"^patch_embedding\.(weight|bias)$"), r"embeddings.patch_embedding.\1"),
    (re.compile(r"^pre_norm\.(weight|bias)$"), r"pre_layrnorm.\1"),
    (re.compile(r"^post_norm\.(weight|bias)$"), r"post_layernorm.\1"),
    (re.compile(r"^transformer\.(\d+)\.norm([12])\.(weight|bias)$"), r"encoder.layers.\1.layer_norm\2.\3"),
    (re.compile(r"^transformer\.(\d+)\.attn\.proj\.(weight|bias)$"), r"encoder.layers.\1.self_attn.out_proj.\2"),
    (re.compile(r"^transformer\.(\d+)\.mlp\.0\.(weight|bias)$"), r"encoder.layers.\1.mlp.fc1.\2"),
    (re.compile(r"^transformer\.(\d+)\.mlp\.2\.(weight|bias)$"), r"encoder.layers.\1.mlp.fc2.\2"),
)
_OFFICIAL_QKV = re.compile(r"^transformer\.(\d+)\.attn\.to_qkv\.(weight|bias)$")
OFFICIAL_CLIP_PREFIX = "visual."
OFFICIAL_TEXT_TOWER = ("textual.", "log_scale")  # the rest of the official two-tower file, not converted


def is_official_clip(keys: Iterable[str]) -> bool:
    return OFFICIAL_CLIP_PREFIX + "cls_embedding" in set(keys)


def from_official_clip(tensors: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:
    """The ``visual.*`` tensors of the official Wan2.1 CLIP under ComfyUI's ``vision_model.*`` names: the fused
    ``to_qkv`` split into q, k, v (in that order along the output rows), the class and position tables without
    their batch dimensions, the ``head`` projection left out (Wan takes no pooled output)."""
    out = {}
    for key, value in tensors.items():
        if not key.startswith(OFFICIAL_CLIP_PREFIX):
            continue
        name = key[len(OFFICIAL_CLIP_PREFIX):]
        qkv = _OFFICIAL_QKV.match(name)
        if name == "cls_embedding":
            out["vision_model.embeddings.class_embedding"] = value.reshape(-1)
        elif name == "pos_embedding":
            out["vision_model.embeddings.position_embedding.weight"] = value.reshape(value.shape[-2], value.shape[-1])
        elif qkv:
            for part, chunk in zip("qkv", value.chunk(3, dim=0)):
                out[f"vision_model.encoder.layers.{qkv.group(1)}.self_attn.{part}_proj.{qkv.group(2)}"] = chunk
        else:
            for pattern, replacement in _OFFICIAL_CLIP:
                if pattern.match(name):
                    out["vision_model." + pattern.sub(replacement, name)] = value
    return out


def _count(keys: Iterable[str], pattern: re.Pattern[str]) -> int:
    indices = [int(m.group(1)) for m in map(pattern.match, keys) if m]
    return max(indices) + 1 if indices else 0


def umt5_config(shapes: Mapping[str, Shape]) -> dict:
    """transformers ``UMT5Config`` keywords for the (prefix-free) umT5 encoder weights of ``shapes``.

    Everything follows from the shapes: width and vocabulary from the embedding, heads and buckets from a
    relative-attention bias, head width from q, FFN width from wi_0. The rest is umT5's: gated tanh-GELU,
    RMS-norm eps 1e-6, relative distances up to 128, pad 0, end of sequence 1.
    """
    vocab, d_model = shapes["shared.weight"]
    buckets, heads = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    inner = shapes["encoder.block.0.layer.0.SelfAttention.q.weight"][0]
    return dict(
        vocab_size=int(vocab), d_model=int(d_model), d_kv=int(inner) // int(heads), num_heads=int(heads),
        d_ff=int(shapes["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"][0]),
        num_layers=_count(shapes, _UMT5_BLOCK), relative_attention_num_buckets=int(buckets),
        relative_attention_max_distance=128, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
        is_encoder_decoder=False, pad_token_id=0, eos_token_id=1, dropout_rate=0.0,
    )


def clip_vision_config(shapes: Mapping[str, Shape], num_heads: int | None = None) -> dict:
    """transformers ``CLIPVisionConfig`` keywords for the (prefix-free) CLIP vision weights of ``shapes``.

    Image size from the position table ((image / patch)^2 + 1 rows). The heads cannot be read from shapes:
    ``num_heads``, else 16 for ViT-H / bigG (head width 80 / 104), else hidden / 64. Exact GELU and
    LayerNorm eps 1e-5 as open-clip's ViT-H (ComfyUI's ``clip_vision_config_h.json``).
    """
    hidden, _, patch, _ = shapes["embeddings.patch_embedding.weight"]
    positions = int(shapes["embeddings.position_embedding.weight"][0])
    side = round((positions - 1) ** 0.5)
    if side * side != positions - 1:
        raise KeyLayoutError(f"CLIP position table of {positions} rows is not a square grid plus the class token")
    heads = num_heads or CLIP_HEADS_BY_WIDTH.get(int(hidden), max(1, int(hidden) // 64))
    return dict(
        hidden_size=int(hidden), intermediate_size=int(shapes["encoder.layers.0.mlp.fc1.weight"][0]),
        num_hidden_layers=_count(shapes, _CLIP_LAYER), num_attention_heads=int(heads), num_channels=3,
        image_size=int(patch) * side, patch_size=int(patch), hidden_act="gelu", layer_norm_eps=1e-5,
    )
