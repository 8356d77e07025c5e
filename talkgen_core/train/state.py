"""Training state on disk: model weights, EMA, optimiser moments and progress, for checkpoints and resume.

``<out>/checkpoint.safetensors`` holds every tensor under a prefix (``vae.``, ``dit.``, ``dit_ema.``,
``wav2vec2.``, ``opt.<name>.<param index>.<moment>``); ``<out>/checkpoint.json`` holds the progress (stage,
steps, seconds spent) and the optimisers' hyper-parameters. Both are written to temporary names and then
renamed, so an interrupted save never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from talkgen_core.files.atomic import atomic_path, write_bytes_atomic

CHECKPOINT_TENSORS = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"


@dataclass
class Progress:
    """Where a run stands. Stages run in order: vae, stage1, stage2, done."""

    stage: str = "vae"
    step: dict[str, int] = field(default_factory=dict)  # optimiser steps per stage
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per stage (caching included)
    budget_s: dict[str, float] = field(default_factory=dict)  # time allowed per stage


class EMA:
    """Exponential moving average of a module's floating-point state, with the usual warm-up
    (decay ``min(d, (1 + n) / (10 + n))``, so the average is not stuck near the random init)."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(module).requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for ema_t, t in zip(self.module.state_dict().values(), module.state_dict().values()):
            if ema_t.is_floating_point():
                ema_t.mul_(d).add_(t.detach(), alpha=1.0 - d)
            else:
                ema_t.copy_(t)


def _optimizer_tensors(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for index, moments in state["state"].items():
        for key, value in moments.items():
            if isinstance(value, Tensor):
                tensors[f"opt.{name}.{index}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _load_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict) -> None:
    prefix = f"opt.{name}."
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, moment = key[len(prefix) :].split(".", 1)
            per_param.setdefault(int(index), {})[moment] = value
    for index, extra in meta.get("scalars", {}).items():
        per_param.setdefault(int(index), {}).update(extra)
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})


def save_checkpoint(
    out_dir: Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    progress: Progress,
    extra: dict | None = None,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value.detach().clone().contiguous()
    opt_meta = {}
    for name, optimizer in optimizers.items():
        opt_tensors, opt_meta[name] = _optimizer_tensors(name, optimizer)
        tensors.update(opt_tensors)
    meta = {"progress": asdict(progress), "optimizers": opt_meta, "extra": extra or {}}
    with atomic_path(out_dir / CHECKPOINT_TENSORS) as temp:  # unpredictable temps, renamed when complete
        save_file(tensors, str(temp))
    write_bytes_atomic(out_dir / CHECKPOINT_META, json.dumps(meta, indent=1).encode())


def has_checkpoint(out_dir: Path) -> bool:
    return (out_dir / CHECKPOINT_TENSORS).is_file() and (out_dir / CHECKPOINT_META).is_file()


def load_checkpoint(
    out_dir: Path, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]
) -> tuple[Progress, dict]:
    """Restore modules and optimisers in place; returns the progress and the ``extra`` dict saved with it."""
    tensors = load_file(str(out_dir / CHECKPOINT_TENSORS))
    meta = json.loads((out_dir / CHECKPOINT_META).read_text())
    for name, module in modules.items():
        prefix = name + "."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    for name, optimizer in optimizers.items():
        if name in meta["optimizers"]:
            _load_optimizer(name, optimizer, tensors, meta["optimizers"][name])
    return Progress(**meta["progress"]), meta.get("extra", {})
