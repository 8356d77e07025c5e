"""A loaded DiT together with where it came from and the LoRAs to apply while sampling with it.

Handles are immutable: adding a LoRA returns a new handle sharing the same module, so one loaded model can
serve several graph branches or jobs with different LoRAs (they are applied unmerged, only while sampling).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class LoadedDiT:
    module: nn.Module
    name: str  # file name(s), or the demo model's name
    is_demo: bool = False
    random_weights: bool = False
    loras: tuple[tuple[str, float], ...] = ()  # (file, strength), applied in order
    sampling_preset: str | None = None  # the preset the model is made for (the distilled demo's)

    def with_lora(self, path: str | Path, strength: float) -> LoadedDiT:
        return replace(self, loras=self.loras + ((str(path), float(strength)),))


@dataclass(frozen=True)
class DemoParts:
    dit: LoadedDiT
    vae: Any  # WanVAE
    wav2vec2: nn.Module


def load_dit_handle(
    paths: Iterable[str | Path],
    device: str | torch.device = "cpu",
    compute_dtype: torch.dtype | None = None,
    operations: type | None = None,
) -> LoadedDiT:
    """Load base (+ adapter) files into a handle; errors name the wrong file (see ``checkpoint.load_dit``).
    ``operations``: the layer classes, the core's when None (see ``layers.CoreOperations``)."""
    from talkgen_core.models.checkpoint import load_dit

    files = [Path(p) for p in paths]
    module = load_dit(files, device=device, compute_dtype=compute_dtype, operations=operations)
    return LoadedDiT(module.eval().requires_grad_(False), " + ".join(f.name for f in files))


def load_demo_parts(device: str | torch.device = "cpu", variant: str = "base") -> DemoParts:
    """The embedded demo model's three parts (shipped weights, or random ones with a warning); ``variant``:
    the base DiT or its ``distilled`` student."""
    from talkgen_core.models.demo import build_demo_networks, demo_model_names

    demo = build_demo_networks(device, variant=variant)
    dit = LoadedDiT(demo.dit, demo_model_names(variant)["dit"], is_demo=True, random_weights=demo.random_weights,
                    sampling_preset=demo.sampling_preset)
    return DemoParts(dit, demo.vae, demo.wav2vec2)


def load_refiner_handle(device: str | torch.device = "cpu") -> LoadedDiT:
    """The embedded refiner (``talkgen_core.refine.embedded``) as a handle, with its sampling preset."""
    from talkgen_core.refine.embedded import load_embedded_refiner

    return LoadedDiT(load_embedded_refiner(device), "demo-refiner", is_demo=True, sampling_preset="demo-refiner")
