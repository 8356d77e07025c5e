"""Reading weight files and loading the DiT from them.

Files: safetensors (headers can be read without loading tensors), or pickle-based files read through
``torch.load(weights_only=True)``, which never executes code. ``load_state_dict_file`` is shared by the DiT,
VAE and audio-encoder loaders.

DiT layouts recognised from the keys:

* official: bare keys (``patch_embedding.weight`` ...), often as shards listed in a ``*.index.json``;
* ComfyUI single file: the same keys under ``model.diffusion_model.`` (or ``diffusion_model.``), possibly
  scaled fp8 (``<module>.scale_weight`` per tensor, a ``scaled_fp8`` marker, ``scale_input``);
* quantised InfiniteTalk files (MeiGen's optimum-quanto int8 / fp8, LightX2V's int8 / fp8 with per-channel
  ``weight_scale``): turned into the official keys plus per-layer scales by :mod:`.quant_formats`;
* adapter: only the InfiniteTalk / MultiTalk keys (``audio_proj.*``, ``blocks.N.audio_cross_attn.*``,
  ``blocks.N.norm_x.*``), merged on top of a base.

Loading builds the model on the meta device and loads with ``assign=True``, so weights are allocated once,
in their stored dtype.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file as _load_safetensors

from talkgen_core.models.configs import DIT_CONFIGS, DiTConfig, get_dit_config, variant
from talkgen_core.models.file_checks import non_finite_keys, non_finite_message, safetensors_problem

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
DIT_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
QUANT_MARKERS = ("scaled_fp8",)
_ADAPTER_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(audio_cross_attn|norm_x)\.)")
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "BF16": "bfloat16", "F16": "float16", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
    "BOOL": "bool",
}  # fmt: skip


class CheckpointError(ValueError):
    """A weight file (set) that cannot be loaded as the requested model; the message says what to do."""


def load_state_dict_file(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load one weight file into a flat ``{key: tensor}`` dict, keeping the stored dtypes.

    Raises ``CheckpointError`` naming the file for a damaged file and for NaN / infinite tensors (naming the
    first such key).
    """
    path = Path(path)
    state = _read_state_dict(path, device)
    bad = non_finite_keys(state)
    if bad:
        raise CheckpointError(non_finite_message(path, bad))
    return state


def _read_state_dict(path: Path, device: str | torch.device) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        try:
            return _load_safetensors(str(path), device=str(device))
        except SafetensorError as exc:
            raise CheckpointError(safetensors_problem(path, exc)) from exc
    if suffix in PICKLE_SUFFIXES:
        try:
            obj = torch.load(str(path), map_location=device, weights_only=True, mmap=True)
        except Exception as exc:  # a pickle that needs code execution, or a corrupt file
            raise ValueError(
                f"{path} could not be read as plain tensors ({exc.__class__.__name__}: {exc}). "
                "talkgen never executes code from weight files; convert it to .safetensors."
            ) from exc
        for wrapper in ("state_dict", "model", "module"):
            if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ValueError(f"{path} does not hold a flat state dict of tensors")
        return obj
    raise ValueError(
        f"{path}: unsupported weight file type {suffix!r}; expected one of "
        f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}"
    )


# ---------------------------------------------------------------------------------------------- file sets
@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str  # torch dtype name without the "torch." prefix, e.g. "bfloat16", "float8_e4m3fn"

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def expand_checkpoint_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Weight files behind the given paths, in order.

    A ``*.index.json`` stands for the shards in its ``weight_map``; a directory for its single index file,
    or else its ``*.safetensors`` files sorted by name.
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise ValueError("no weight files given")
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            indexes = sorted(item.glob("*.index.json"))
            if len(indexes) == 1:
                item = indexes[0]
            else:
                shards = sorted(item.glob("*.safetensors"))
                if not shards:
                    raise FileNotFoundError(f"{item} holds no *.index.json and no *.safetensors files")
                files.extend(shards)
                continue
        if item.name.endswith(".index.json"):
            try:
                weight_map = json.loads(item.read_text())["weight_map"]
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"{item} is not a shard index (needs a 'weight_map' object): {exc}") from exc
            shard_names = list(dict.fromkeys(weight_map.values()))
            missing = [n for n in shard_names if not (item.parent / n).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{item} lists {len(shard_names)} shards; missing next to it: {', '.join(missing[:3])}"
                )
            files.extend(item.parent / n for n in shard_names)
        elif not item.is_file():
            raise FileNotFoundError(f"weight file not found: {item}")
        else:
            files.append(item)
    return files


def read_tensor_specs(path: str | Path) -> dict[str, TensorSpec]:
    """Key -> shape and dtype of one file; safetensors headers only (no tensor data is read)."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        specs = {}
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    sl = f.get_slice(key)
                    raw = sl.get_dtype()
                    specs[key] = TensorSpec(tuple(sl.get_shape()), _SAFETENSORS_DTYPES.get(raw, raw.lower()))
        except SafetensorError as exc:
            raise CheckpointError(safetensors_problem(path, exc)) from exc
        return specs
    return {
        k: TensorSpec(tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in load_state_dict_file(path).items()
    }


def strip_dit_prefix(keys: Iterable[str]) -> str:
    """The DiT prefix (``model.diffusion_model.`` ...) that every DiT key of a file carries, or ''."""
    keys = list(keys)
    for prefix in DIT_PREFIXES:
        if keys and all(k.startswith(prefix) or k in QUANT_MARKERS for k in keys):
            return prefix
        if any(k.startswith(prefix + "patch_embedding.") or k.startswith(prefix + "blocks.") for k in keys):
            return prefix
    return ""


def normalise_keys(mapping: dict[str, object], prefix: str) -> dict[str, object]:
    """Keys under ``prefix`` with the prefix removed. Keys outside it belong to other components of a combined
    checkpoint (VAE, text encoder) and are left out; top-level fp8 markers are kept for
    ``quant_formats.split_comfyui_fp8``."""
    if not prefix:
        return dict(mapping)
    return {
        (k[len(prefix) :] if k.startswith(prefix) else k): v
        for k, v in mapping.items()
        if k.startswith(prefix) or k in QUANT_MARKERS
    }


def split_file_entries(path: Path, raw: dict[str, object]):
    """One file's DiT entries (prefix removed) as a ``quant_formats.QuantSplit``; a quanto file's map beside it
    is checked too."""
    from talkgen_core.models.quant_formats import quanto_map_problem, split_quantised

    split = split_quantised(normalise_keys(raw, strip_dit_prefix(raw)), what=str(path))
    problem = quanto_map_problem(path) if split.family and "quanto" in split.family else None
    if problem:
        raise CheckpointError(problem)
    return split


def classify_keys(keys: Iterable[str]) -> str:
    """Name the kind of file a (prefix-stripped) key set comes from.

    One of: ``dit`` (a full or base DiT), ``adapter``, ``lora``, ``vae``, ``wav2vec2``, ``text_encoder``,
    ``clip_vision``, ``unknown``.
    """
    keys = list(keys)
    if not keys:
        return "unknown"
    joined = "\n".join(keys[:5000])
    if any(tag in joined for tag in (".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.")) or any(
        k.endswith((".diff", ".diff_b")) for k in keys
    ):
        return "lora"
    if all(_ADAPTER_KEY.match(k) for k in keys):
        return "adapter"
    if "patch_embedding.weight" in keys or any(k.startswith("blocks.0.self_attn.") for k in keys):
        return "dit"
    if any(k.startswith(("encoder.downsamples.", "decoder.upsamples.", "decoder.middle.")) for k in keys):
        return "vae"
    if any("feature_extractor.conv_layers" in k or k.startswith("wav2vec2.") for k in keys):
        return "wav2vec2"
    if any(k.startswith(("encoder.block.", "shared.", "token_embedding.")) for k in keys):
        return "text_encoder"
    if any(k.startswith(("visual.", "vision_model.", "log_scale")) for k in keys):
        return "clip_vision"
    return "unknown"


_KIND_ADVICE = {
    "lora": "this is a LoRA, not a model: load the base model (and adapter) and apply the LoRA on top",
    "vae": "this is a VAE file (Wan2.1_VAE); pass it where the VAE is asked for, not as the diffusion model",
    "wav2vec2": "this is an audio encoder (wav2vec2) file; pass it as the audio encoder",
    "text_encoder": "this is a text encoder (umT5) file; pass it as the text encoder",
    "clip_vision": "this is a CLIP vision encoder; pass it as the CLIP vision model",
    "adapter": (
        "this is only the InfiniteTalk/MultiTalk audio adapter; pass the Wan2.1-I2V-14B-480P base model "
        "(7 official shards via their index.json, or a ComfyUI single file) together with it"
    ),
}


def guess_wrong_file(specs: dict[str, TensorSpec], expected: DiTConfig | None = None) -> str | None:
    """A one-line guess of what the user picked, from a merged, prefix-stripped key set."""
    kind = classify_keys(specs)
    if kind in _KIND_ADVICE:
        return _KIND_ADVICE[kind]
    if kind != "dit":
        return "the keys match no known Wan / InfiniteTalk / VAE / encoder layout"
    patch = specs.get("patch_embedding.weight")
    in_dim = patch.shape[1] if patch is not None and len(patch.shape) == 5 else None
    dim = patch.shape[0] if patch is not None else None
    has_img = any(k.startswith("img_emb.") for k in specs)
    has_audio = any(_ADAPTER_KEY.match(k) for k in specs)
    if any(k.startswith("vace_") for k in specs):
        return "this is a Wan VACE model; InfiniteTalk needs the Wan2.1-I2V-14B-480P base"
    if in_dim == 16 and not has_img:
        return "this is a Wan2.1 text-to-video (T2V) model (16 input channels, no img_emb); use Wan2.1-I2V-14B-480P"
    if in_dim == 48 or dim == 3072:
        return "this is a Wan 2.2 TI2V-5B model (48-channel latents); InfiniteTalk runs on Wan2.1-I2V-14B-480P"
    if in_dim == 36 and not has_img:
        return (
            "this looks like a Wan 2.2 I2V-A14B expert (36 input channels but no CLIP img_emb); "
            "InfiniteTalk runs on Wan2.1-I2V-14B-480P"
        )
    if expected is not None and dim is not None and dim != expected.dim:
        return f"the model width is {dim}, but config {expected.name!r} has {expected.dim} (a different model size)"
    if not has_audio:
        return (
            "this is the Wan2.1 I2V base without the audio adapter; also pass the InfiniteTalk (single/multi) or "
            "MultiTalk adapter file"
        )
    return None


@lru_cache(maxsize=16)
def expected_specs(config: DiTConfig) -> dict[str, tuple[int, ...]]:
    """State-dict keys and shapes of a model built from ``config`` (built on the meta device; cached, do not
    mutate the returned dict)."""
    from talkgen_core.models.dit import build_dit

    return {k: tuple(v.shape) for k, v in build_dit(config, device="meta").state_dict().items()}


def key_mismatch(
    have: dict[str, TensorSpec], want: dict[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong-shape) key lists, sorted."""
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    wrong = sorted(k for k in set(want) & set(have) if tuple(have[k].shape) != want[k])
    return missing, unexpected, wrong


def infer_config(specs: dict[str, TensorSpec]) -> DiTConfig | None:
    """The registered config whose keys and shapes match exactly, else one inferred from the shapes
    (head_dim 128 as in every Wan model), else None."""
    for config in DIT_CONFIGS.values():
        if not any(key_mismatch(specs, expected_specs(config))):
            return config
    guess = _shape_inferred_config(specs)
    return None if guess is None or any(key_mismatch(specs, expected_specs(guess))) else guess


def closest_config(specs: dict[str, TensorSpec]) -> DiTConfig | None:
    """The candidate config with the fewest missing + unexpected + wrong-shape keys, if it shares any key."""
    candidates = list(DIT_CONFIGS.values())  # registered configs win ties
    inferred = _shape_inferred_config(specs)
    if inferred is not None:
        candidates.append(inferred)
    best, best_cost = None, None
    for config in candidates:
        want = expected_specs(config)
        if not set(want) & set(specs):
            continue
        cost = sum(len(part) for part in key_mismatch(specs, want))
        if best_cost is None or cost < best_cost:
            best, best_cost = config, cost
    return best


def _shape_inferred_config(specs: dict[str, TensorSpec]) -> DiTConfig | None:
    """Wan sizes read off the base tensors (head_dim 128), audio adapter sizes as in the 14B config."""
    try:
        patch = specs["patch_embedding.weight"].shape
        layers = 1 + max(int(k.split(".")[1]) for k in specs if k.startswith("blocks."))
        guess = variant(
            "wan21-i2v-14b",
            name=f"inferred-{patch[0]}x{layers}",
            dim=patch[0],
            in_dim=patch[1],
            out_dim=specs["head.head.weight"].shape[0] // 4,
            num_heads=max(1, patch[0] // 128),
            num_layers=layers,
            ffn_dim=specs["blocks.0.ffn.0.weight"].shape[0],
            text_dim=specs["text_embedding.0.weight"].shape[1],
            clip_dim=specs["img_emb.proj.0.weight"].shape[0],
        )
    except (KeyError, ValueError, IndexError):
        return None
    return guess


def mismatch_message(
    what: str,
    missing: Sequence[str],
    unexpected: Sequence[str],
    wrong: Sequence[str],
    have: dict[str, TensorSpec],
    want: dict[str, tuple[int, ...]],
    guess: str | None,
) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:5])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:5])})")
    if wrong:
        shown = ", ".join(f"{k} file {list(have[k].shape)} vs model {list(want[k])}" for k in wrong[:3])
        parts.append(f"{len(wrong)} shape mismatches (first: {shown})")
    if guess:
        parts.append(f"probable cause: {guess}")
    return f"{what} does not match the model: " + "; ".join(parts)


# ---------------------------------------------------------------------------------------------- loading
@dataclass
class FileReport:
    path: str
    kind: str  # dit / adapter / lora / vae / ...
    layout: str  # "official", "comfyui (model.diffusion_model.)", "official shard", ...
    tensors: int
    parameters: int
    dtypes: dict[str, int]  # dtype name -> parameter count
    fp8_scales: int  # weight scales of any quantised family
    family: str | None = None  # the quantised / distilled family its layout belongs to (quant_formats)


@dataclass
class CheckpointReport:
    """What ``describe_checkpoint`` found; ``text()`` formats it for the ``check-model`` command."""

    files: list[FileReport]
    parameters: int
    dtypes: dict[str, int]
    config: str | None
    loads: bool
    problem: str | None = None
    notes: list[str] = field(default_factory=list)
    keys_match: bool = False  # the config's keys and shapes match; ``loads`` also needs loadable dtypes and scales
    families: list[str] = field(default_factory=list)  # named formats of the files (quant_formats), in file order

    def text(self) -> str:
        lines = []
        for f in self.files:
            dt = ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in sorted(f.dtypes.items(), key=lambda kv: -kv[1]))
            extra = f", {f.fp8_scales} weight scales" if f.fp8_scales else ""
            extra += f", format: {f.family}" if f.family else ""
            lines.append(
                f"{f.path}: {f.kind}, {f.layout}, {f.tensors} tensors, {f.parameters:,} parameters ({dt}){extra}"
            )
        shares = sorted(self.dtypes.items(), key=lambda kv: -kv[1])
        total = ", ".join(f"{k} {v / self.parameters:.0%}" for k, v in shares) if self.parameters else "-"
        lines.append(f"total: {self.parameters:,} parameters ({total})")
        if self.families:
            lines.append(f"format: {' + '.join(self.families)}")
        if self.config and not self.keys_match:
            lines.append(f"config: none matches exactly (closest: {self.config})")
        else:
            lines.append(f"config: {self.config or 'none matches'}")
        lines.append(f"loads: {'yes' if self.loads else 'no'}")
        if self.problem:
            lines.append(f"problem: {self.problem}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _file_layout(prefix: str, in_index: bool) -> str:
    if prefix:
        return f"comfyui single file ({prefix} prefix)"
    return "official shard" if in_index else "official keys"


def describe_checkpoint(
    paths: str | Path | Iterable[str | Path], config: str | DiTConfig | None = None
) -> CheckpointReport:
    """Report format, dtypes, parameter count and whether the files load into a DiT config.

    Reads only safetensors headers, so it is quick even for the 14B files; "loads" is decided by
    :func:`assemble_dit`, the loader's own last step, run on data-free meta tensors (keys, shapes, dtypes the
    layers can compute from, scales that fit their weights). NaN weights show only when the data is read.
    """
    from talkgen_core.models.quant_formats import COMFYUI_FP8, diffusers_family

    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    in_index = any(str(p).endswith(".index.json") or Path(p).is_dir() for p in items)
    merged: dict[str, TensorSpec] = {}
    merged_scales: dict[str, TensorSpec] = {}
    integer_modules: set[str] = set()
    reports, notes, scale_counts = [], [], Counter()
    files = expand_checkpoint_paths(items)
    for path in files:
        raw = read_tensor_specs(path)
        prefix = strip_dit_prefix(raw)
        try:
            split = split_file_entries(path, raw)
        except CheckpointError as exc:
            return CheckpointReport(files=reports, parameters=0, dtypes={}, config=None, loads=False,
                                    problem=str(exc), notes=notes)
        weights, scales = split.weights, split.scales
        scale_counts[split.family] += len(scales)
        merged_scales.update(scales)  # type: ignore[arg-type]
        integer_modules |= split.integer_modules
        outside = sum(1 for k in raw if prefix and not k.startswith(prefix) and k not in QUANT_MARKERS)
        if outside:
            notes.append(f"{path.name}: {outside} keys outside {prefix!r} ignored (other components of the file)")
        dtypes: Counter[str] = Counter()
        for spec in weights.values():
            dtypes[spec.dtype] += spec.numel
        reports.append(
            FileReport(
                path=str(path), kind=classify_keys(weights), layout=_file_layout(prefix, in_index),
                tensors=len(weights), parameters=sum(dtypes.values()), dtypes=dict(dtypes), fp8_scales=len(scales),
                family=split.family,
            )
        )  # fmt: skip
        merged.update(weights)  # type: ignore[arg-type]  # later files override earlier ones, as officially
    total: Counter[str] = Counter()
    for spec in merged.values():
        total[spec.dtype] += spec.numel
    families = list(dict.fromkeys(f.family for f in reports if f.family)) or [
        name for name in [diffusers_family(files, merged)] if name
    ]
    report = CheckpointReport(
        files=reports, parameters=sum(total.values()), dtypes=dict(total), config=None, loads=False, notes=notes,
        families=families,
    )
    chosen = get_dit_config(config) if config is not None else infer_config(merged) or closest_config(merged)
    if chosen is None:
        report.problem = "no DiT config matches these keys; probable cause: " + (
            guess_wrong_file(merged) or "an unknown layout"
        )
        return report
    report.config = chosen.name
    want = expected_specs(chosen)
    missing, unexpected, wrong = key_mismatch(merged, want)
    if missing or unexpected or wrong:
        report.problem = mismatch_message(
            "the file set", missing, unexpected, wrong, merged, want, guess_wrong_file(merged, chosen)
        )
        return report
    report.keys_match = True
    try:
        assemble_dit(chosen, meta_tensors(merged), meta_tensors(merged_scales), "the file set",
                     integer_modules=integer_modules)
    except CheckpointError as exc:
        report.problem = str(exc)
        return report
    report.loads = True
    for family, count in scale_counts.items():
        if not count:
            continue
        if family == COMFYUI_FP8:
            report.notes.append(f"{count} fp8 weights carry a per-tensor scale; they are de-scaled at compute time")
        else:
            report.notes.append(f"{count} weights of {family} carry a scale; they stay 8-bit in memory and each "
                                "layer multiplies its scale in when it runs")
    return report


def _default_compute_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The dtype most parameters are stored in; fp8 and int8 storage compute in bf16."""
    counts: Counter[torch.dtype] = Counter()
    for t in state.values():
        counts[t.dtype] += t.numel()
    stored = counts.most_common(1)[0][0] if counts else torch.float32
    return stored if stored in (torch.float32, torch.bfloat16, torch.float16) else torch.bfloat16


def load_dit(
    paths: str | Path | Iterable[str | Path],
    config: str | DiTConfig | None = None,
    device: str | torch.device = "cpu",
    compute_dtype: torch.dtype | None = None,
    operations: type | None = None,
):
    """Load a ``WanDiT`` from weight files (base shards / single file, then adapter files on top).

    Weights keep their stored dtype; ``compute_dtype`` defaults to the dominant stored dtype (bf16 for fp8).
    ``operations``: the layer classes (``layers.CoreOperations`` when None; see ``assemble_dit`` for fp8 scales).
    Raises ``CheckpointError`` naming the first missing / unexpected keys and the probable wrong file.
    """
    files = expand_checkpoint_paths(paths)
    state: dict[str, torch.Tensor] = {}
    scales: dict[str, torch.Tensor] = {}
    integer_modules: set[str] = set()
    for path in files:
        split = split_file_entries(path, load_state_dict_file(path, device=device))
        state.update(split.weights)  # type: ignore[arg-type]
        scales.update(split.scales)  # type: ignore[arg-type]
        integer_modules |= split.integer_modules
    specs = {k: TensorSpec(tuple(v.shape), str(v.dtype)) for k, v in state.items()}
    chosen = get_dit_config(config) if config is not None else infer_config(specs) or closest_config(specs)
    names = ", ".join(str(f) for f in files[:3]) + (" ..." if len(files) > 3 else "")
    if chosen is None:
        raise CheckpointError(
            f"{names}: no DiT config matches these keys; probable cause: "
            f"{guess_wrong_file(specs) or 'an unknown layout'}"
        )
    want = expected_specs(chosen)
    missing, unexpected, wrong = key_mismatch(specs, want)
    if missing or unexpected or wrong:
        what = f"{names} (checked against config {chosen.name!r})"
        raise CheckpointError(
            mismatch_message(what, missing, unexpected, wrong, specs, want, guess_wrong_file(specs, chosen))
        )
    model = assemble_dit(chosen, state, scales, names, operations, integer_modules=integer_modules)
    model.set_compute_dtype(compute_dtype or _default_compute_dtype(state))
    return model


def assemble_dit(
    config: DiTConfig,
    state: dict[str, torch.Tensor],
    scales: dict[str, torch.Tensor],
    what: str,
    operations: type | None = None,
    integer_modules: Iterable[str] = (),
):
    """What loading does once the files are read: refuse dtypes the layers cannot compute from, build on the meta
    device, take the tensors (``assign``) and attach the scales. Given meta tensors (see :func:`meta_tensors`) it
    tries a file set without reading its data, which keeps ``check-model`` honest.

    Stored dtypes: any float (fp32, bf16, fp16, fp64, fp8 e4m3fn / e5m2); a layer casts its weight to the compute
    dtype at call time and multiplies by its ``scale_weight`` (per tensor or per output channel) when the file has
    one. int8 codes load only in ``integer_modules``: layers whose family (MeiGen optimum-quanto, LightX2V;
    :mod:`.quant_formats`) defines their scale. Other integer tensors (GGUF, bitsandbytes, torchao exports, int8
    beside a ComfyUI fp8 ``scale_weight``) are refused: casting them would compute with the raw codes.

    ``operations`` (a host's layer classes) build the model unless the files carry scales: those need the core's
    layers (``layers.CoreOperations``), which read ``scale_weight``.
    """
    from talkgen_core.models.dit import build_dit
    from talkgen_core.models.layers import CoreOperations

    model = build_dit(config, device="meta", operations=CoreOperations if scales or operations is None else operations)
    floating = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    scaled_int8 = {f"{m}.weight" for m in integer_modules}
    integer = sorted(
        k for k, v in state.items()
        if k in floating and not v.is_floating_point() and not (v.dtype == torch.int8 and k in scaled_int8)
    )  # fmt: skip
    if integer:
        kinds = ", ".join(sorted({str(state[k].dtype).removeprefix("torch.") for k in integer}))
        raise CheckpointError(
            f"{what}: {len(integer)} tensors are stored as {kinds} (first: {integer[0]}) without a scale their format "
            "defines; the loader de-quantises int8 only in MeiGen's optimum-quanto files (weight._data + "
            "weight._scale) and LightX2V's (weight + weight_scale), so other int8 checkpoints (GGUF, bitsandbytes, "
            "torchao exports) cannot be loaded: use the bf16, fp16 or fp8 release of the model"
        )
    if scaled_int8:
        model.requires_grad_(False)  # assign keeps requires_grad, and integer tensors cannot require gradients
    model.load_state_dict(state, strict=True, assign=True)
    modules = dict(model.named_modules())
    for name, scale in scales.items():
        module = modules.get(name)
        if module is None or not hasattr(module, "scale_weight"):
            raise CheckpointError(f"{what}: weight scale for {name!r}, which is not a linear/conv layer of the model")
        weight_shape = tuple(module.weight.shape)
        try:
            fits = torch.broadcast_shapes(weight_shape, tuple(scale.shape)) == weight_shape
        except RuntimeError:
            fits = False
        if not fits:
            raise CheckpointError(
                f"{what}: the scale of {name!r} has shape {list(scale.shape)}, which does not fit its weight "
                f"{list(weight_shape)} (a per-tensor scale has one element)"
            )
        module.scale_weight = scale.float()
    return model


def meta_tensors(specs: dict[str, TensorSpec]) -> dict[str, torch.Tensor]:
    """Data-free stand-ins of the given shapes and dtypes, for trying a load without reading the files."""
    out = {}
    for key, spec in specs.items():
        dtype = getattr(torch, spec.dtype.removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"tensor {key!r} has dtype {spec.dtype!r}, which this torch cannot hold")
        out[key] = torch.empty(spec.shape, dtype=dtype, device="meta")
    return out
