"""LoRA and weight-delta files (lightx2v step distillation, FusionX, ...) applied merged or unmerged.

Key forms understood (after an optional ``model.diffusion_model.`` / ``diffusion_model.`` prefix, or the
kohya ``lora_unet_`` prefix with ``_`` in place of ``.``):

* ``<module>.lora_down.weight`` / ``<module>.lora_up.weight`` / optional ``<module>.alpha``
* ``<module>.lora_A.weight`` / ``<module>.lora_B.weight`` / optional ``<module>.alpha``
* ``<module>.diff`` (full weight delta) and ``<module>.diff_b`` (bias delta); ``<param>.diff`` for a bare
  parameter such as ``blocks.0.modulation``.

Effective delta: ``strength * (alpha / rank if alpha is given else 1) * up @ down`` plus ``strength * diff``.
(The official InfiniteTalk merger ignores alpha; lightx2v files carry alpha = rank, so both agree there.)

``apply_lora`` / ``applied_loras`` merge by default: the delta is added into each weight whose stored dtype
allows it (fp32 / bf16 / fp16 without a ``scale_weight``), so a LoRA costs nothing per forward, and the
exact original of every merged weight is kept (on the CPU, as ComfyUI's ModelPatcher backs weights up to its
offload device) so that ``LoraHandle.remove()`` restores it bit for bit. fp8 and scaled weights are not
merged (that would re-quantize them): they get the low-rank path in a forward hook, as every layer does with
``merge=False``. Small non-matmul parameters (norm weights, modulation) always get their diffs added in place
and restored by ``remove()``. ``merge_lora`` merges for good (no originals kept; refused for fp8).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from talkgen_core.models.checkpoint import DIT_PREFIXES, load_state_dict_file

_SUFFIXES = {
    ".lora_down.weight": "down",
    ".lora_up.weight": "up",
    ".lora_A.weight": "down",
    ".lora_B.weight": "up",
    ".alpha": "alpha",
    ".diff_b": "diff_b",
    ".diff": "diff",
}
_FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)


class LoraError(ValueError):
    """A LoRA file that does not fit the model; the message names the keys."""


@dataclass
class LoraPatch:
    """All delta tensors aimed at one module (or one bare parameter) of the model."""

    target: str
    down: torch.Tensor | None = None  # [r, in, *kernel]
    up: torch.Tensor | None = None  # [out, r, *1]
    alpha: float | None = None
    diff: torch.Tensor | None = None  # shaped like the weight
    diff_b: torch.Tensor | None = None  # shaped like the bias

    def low_rank_scale(self, strength: float) -> float:
        if self.down is None:
            return 0.0
        rank = self.down.shape[0]
        return strength * (self.alpha / rank if self.alpha is not None else 1.0)

    def to(self, device: torch.device) -> LoraPatch:
        """The same patch with its tensors on ``device`` (moved once when applied, not at every forward)."""
        tensors = {k: getattr(self, k) for k in ("down", "up", "diff", "diff_b") if getattr(self, k) is not None}
        return replace(self, **{k: v.to(device) for k, v in tensors.items()})

    def weight_delta(self, strength: float, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
        """Full delta for a weight shaped like ``like`` in ``dtype`` (None when there is none)."""
        delta = None
        if self.down is not None and self.up is not None:
            product = self.up.flatten(1).to(torch.float32) @ self.down.flatten(1).to(torch.float32)
            delta = product.reshape(like.shape) * self.low_rank_scale(strength)
        if self.diff is not None:
            d = self.diff.to(torch.float32).reshape(like.shape) * strength
            delta = d if delta is None else delta + d
        return None if delta is None else delta.to(dtype)


@dataclass
class LoraHandle:
    """Undo record of ``apply_lora``: forward hooks and original parameter values to restore."""

    hooks: list[torch.utils.hooks.RemovableHandle] = field(default_factory=list)
    restores: list[tuple[nn.Parameter, torch.Tensor]] = field(default_factory=list)
    merged: bool = False

    def remove(self) -> None:
        if self.merged:
            raise LoraError("a LoRA merged by merge_lora cannot be removed; reload the model, or use apply_lora, "
                            "which keeps the originals")
        for hook in self.hooks:
            hook.remove()
        with torch.no_grad():
            for param, original in reversed(self.restores):
                param.copy_(original)
        self.hooks.clear()
        self.restores.clear()


def _resolve_name(raw: str, modules: Mapping[str, nn.Module], params: Mapping[str, nn.Parameter]) -> str | None:
    for prefix in DIT_PREFIXES:
        if raw.startswith(prefix):
            raw = raw[len(prefix) :]
            break
    if raw.startswith("lora_unet_"):
        flat = raw[len("lora_unet_") :]
        by_flat = {name.replace(".", "_"): name for name in list(modules) + list(params)}
        return by_flat.get(flat)
    return raw if raw in modules or raw in params else None


def read_lora(source: str | Path | Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, LoraPatch]:
    """Parse a LoRA file (or state dict) into patches keyed by model module / parameter name."""
    state = load_state_dict_file(source) if isinstance(source, (str, Path)) else dict(source)
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    patches: dict[str, LoraPatch] = {}
    unknown_format, unmatched = [], []
    for key, tensor in state.items():
        suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            unknown_format.append(key)
            continue
        target = _resolve_name(key[: -len(suffix)], modules, params)
        if target is None:
            unmatched.append(key)
            continue
        patch = patches.setdefault(target, LoraPatch(target))
        kind = _SUFFIXES[suffix]
        setattr(patch, kind, float(tensor) if kind == "alpha" else tensor)
    if unknown_format:
        raise LoraError(
            f"{len(unknown_format)} LoRA keys in no known form (first: {', '.join(unknown_format[:3])}); "
            "expected .lora_down/.lora_up, .lora_A/.lora_B, .alpha, .diff or .diff_b"
        )
    if unmatched:
        raise LoraError(
            f"{len(unmatched)} LoRA keys name no layer of this model (first: {', '.join(unmatched[:3])}); "
            "is the LoRA made for a different model (e.g. Wan 2.2, or 1.3B vs 14B)?"
        )
    for patch in patches.values():
        if (patch.down is None) != (patch.up is None):
            raise LoraError(f"LoRA for {patch.target!r} has only one of the down/up (A/B) matrices")
    return patches


def _weight_params(module: nn.Module) -> tuple[nn.Parameter | None, nn.Parameter | None]:
    return getattr(module, "weight", None), getattr(module, "bias", None)


def merge_lora(model: nn.Module, patches: Mapping[str, LoraPatch], strength: float = 1.0) -> LoraHandle:
    """Add the deltas into the weights for good (no originals kept). fp8 weights are refused; use ``apply_lora``."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    with torch.no_grad():
        for target, patch in patches.items():
            if target in params:  # bare parameter such as blocks.N.modulation
                param = params[target]
                param.add_(patch.weight_delta(strength, param, torch.float32).to(param.dtype))
                continue
            weight, _ = _weight_params(modules[target])
            if weight is None:
                raise LoraError(f"LoRA targets {target!r}, which has no weight")
            if weight.dtype in _FP8:
                raise LoraError(
                    f"cannot merge a LoRA into fp8 weight {target!r} without re-quantizing it; "
                    "use apply_lora (it hooks fp8 layers)"
                )
            _merge_into(modules[target], patch, strength, keep_originals=None)
    return LoraHandle(merged=True)


def _mergeable(module: nn.Module) -> bool:
    """A linear / conv layer whose stored weight takes a delta without re-quantizing (not fp8, not scaled)."""
    return module.weight.dtype not in _FP8 and getattr(module, "scale_weight", None) is None


def _merge_into(module: nn.Module, patch: LoraPatch, strength: float, keep_originals: LoraHandle | None) -> None:
    """Add the patch into ``module``'s weight and bias in place (fp32 sum, rounded once to the stored dtype).

    With ``keep_originals`` the exact previous values go into its restore list first (as CPU copies).
    """
    weight, bias = _weight_params(module)
    delta = patch.weight_delta(strength, weight, torch.float32)
    changes = [] if delta is None else [(weight, delta)]
    if patch.diff_b is not None:
        if bias is None:
            raise LoraError(f"LoRA has a bias delta for {patch.target!r}, which has no bias")
        changes.append((bias, strength * patch.diff_b.float()))
    for param, change in changes:
        if keep_originals is not None:
            keep_originals.restores.append((param, param.detach().to("cpu", copy=True)))
        param.copy_((param.float() + change).to(param.dtype))


def _linear_hook(patch: LoraPatch, strength: float):
    scale = patch.low_rank_scale(strength)

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        if patch.down is not None and patch.up is not None:
            output = output + F.linear(F.linear(x, patch.down.to(x.dtype)), patch.up.to(x.dtype)) * scale
        if patch.diff is not None:
            output = output + F.linear(x, patch.diff.to(x.dtype)) * strength
        if patch.diff_b is not None:
            output = output + patch.diff_b.to(output.dtype) * strength
        return output

    return hook


def _conv_hook(patch: LoraPatch, strength: float):
    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        delta = patch.weight_delta(strength, module.weight, x.dtype)
        bias = None if patch.diff_b is None else (patch.diff_b * strength).to(x.dtype)
        if delta is None:
            return output + bias.view(1, -1, 1, 1, 1)  # type: ignore[union-attr]
        return output + F.conv3d(x, delta, bias, stride=module.stride)

    return hook


def apply_lora(
    model: nn.Module,
    source: str | Path | Mapping[str, torch.Tensor] | Mapping[str, LoraPatch],
    strength: float = 1.0,
    merge: bool = True,
) -> LoraHandle:
    """Apply a LoRA with ``strength``, removably: merged where the stored dtype allows, else in forward hooks.

    ``merge=False`` hooks every linear / conv layer instead (no weight copies kept, but each forward pays for
    the low-rank path).
    """
    if isinstance(source, Mapping) and source and all(isinstance(v, LoraPatch) for v in source.values()):
        patches: Mapping[str, LoraPatch] = source  # type: ignore[assignment]
    else:
        patches = read_lora(source, model)  # type: ignore[arg-type]
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    handle = LoraHandle()
    with torch.no_grad():
        for target, patch in patches.items():
            module = modules.get(target)
            anchor = params[target] if module is None else next(module.parameters(), None)
            if anchor is not None:
                patch = patch.to(anchor.device)
            if merge and isinstance(module, (nn.Linear, nn.Conv3d)) and _mergeable(module):
                _merge_into(module, patch, strength, keep_originals=handle)
            elif isinstance(module, nn.Linear):  # the core's or a host's layers
                handle.hooks.append(module.register_forward_hook(_linear_hook(patch, strength)))
            elif isinstance(module, nn.Conv3d):
                handle.hooks.append(module.register_forward_hook(_conv_hook(patch, strength)))
            else:  # norms and bare parameters: small, never fp8; add in place and remember the original
                for param, delta in _small_param_deltas(target, module, params, patch, strength):
                    handle.restores.append((param, param.detach().clone()))
                    param.add_(delta.to(param.dtype))
    return handle


def _small_param_deltas(
    target: str, module: nn.Module | None, params: Mapping[str, nn.Parameter], patch: LoraPatch, strength: float
) -> list[tuple[nn.Parameter, torch.Tensor]]:
    if module is None:
        param = params[target]
        return [(param, patch.weight_delta(strength, param, torch.float32))]  # type: ignore[list-item]
    if patch.down is not None:
        raise LoraError(f"low-rank LoRA on {target!r} ({type(module).__name__}) is not a linear or conv layer")
    weight, bias = _weight_params(module)
    if (patch.diff is not None and weight is None) or (patch.diff_b is not None and bias is None):
        raise LoraError(f"LoRA has a delta for {target!r} ({type(module).__name__}), which has no such parameter")
    out = []
    if patch.diff is not None and weight is not None:
        out.append((weight, patch.diff.float() * strength))
    if patch.diff_b is not None and bias is not None:
        out.append((bias, patch.diff_b.float() * strength))
    return out


@contextmanager
def applied_loras(
    model: nn.Module, loras: Iterable[tuple[str | Path | Mapping[str, torch.Tensor], float]], merge: bool = True
) -> Iterator[list[LoraHandle]]:
    """Apply ``(source, strength)`` LoRAs, in order, for the duration of a ``with`` block (see ``apply_lora``).

    The model is bit for bit as before afterwards (merged weights restored from their originals, hooks
    removed, in-place parameter deltas undone), also when the block raises; so one loaded model can serve
    runs with different LoRAs.
    """
    handles: list[LoraHandle] = []
    try:
        for source, strength in loras:
            handles.append(apply_lora(model, source, strength=strength, merge=merge))
        yield handles
    finally:
        for handle in reversed(handles):
            handle.remove()
