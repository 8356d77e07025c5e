"""The embedded demo model's three networks (DiT, VAE, wav2vec2): shipped weights, or seeded random ones.

Here, below the pipeline, so that model handles (``models/handles.py``) and ``pipeline.load_demo_models``
build it the same way without the models layer importing the pipeline.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEMO_WEIGHT_FILES = {
    "dit": "demo-dit.safetensors",
    "vae": "demo-vae.safetensors",
    "wav2vec2": "demo-wav2vec2.safetensors",
}
DEMO_MODEL_NAMES = {"dit": "demo", "vae": "demo", "wav2vec2": "demo"}
# The demo DiTs: today's model, and its few-step student (talkgen_core.train.distill) with the sampling preset
# it was distilled for (talkgen_core.sampling.presets).
DEMO_STUDENT_FILE = "demo-dit-distilled.safetensors"
DEMO_VARIANTS = {"base": (DEMO_WEIGHT_FILES["dit"], None), "distilled": (DEMO_STUDENT_FILE, "demo-distilled")}
DEMO_SEED = 0
# safetensors metadata key naming the registry config a demo weight file was trained as (absent: the first
# demo model's, DEMO_MODEL_NAMES)
CONFIG_METADATA_KEY = "talkgen_config"


def demo_model_names(variant: str = "base") -> dict[str, str]:
    """The names a demo run records (job manifests, reports): the student's DiT is ``demo-distilled``."""
    return dict(DEMO_MODEL_NAMES, dit="demo" if variant == "base" else f"demo-{variant}")


def demo_config_names(weights_dir: Path = WEIGHTS_DIR) -> dict[str, str]:
    """The registry config of each demo network, as its weight file records it."""
    from safetensors import safe_open

    names = dict(DEMO_MODEL_NAMES)
    for part, file_name in DEMO_WEIGHT_FILES.items():
        path = Path(weights_dir) / file_name
        if path.is_file():
            with safe_open(str(path), framework="pt") as f:
                names[part] = (f.metadata() or {}).get(CONFIG_METADATA_KEY, names[part])
    return names


class DemoWeightsWarning(UserWarning):
    """The demo model runs on random weights because no shipped weights were found."""


@dataclass(frozen=True)
class DemoNetworks:
    dit: nn.Module
    vae: Any  # WanVAE
    wav2vec2: nn.Module
    random_weights: bool
    sampling_preset: str | None = None  # the preset the DiT is made for (None: the demo preset)


def build_demo_networks(
    device: Union[str, torch.device] = "cpu", weights_dir: Union[Path, None] = None, variant: str = "base"
) -> DemoNetworks:
    """The demo networks in eval mode: shipped weights when all three files exist, else seeded random weights
    (with a :class:`DemoWeightsWarning`). ``variant``: the DiT, ``base`` or its few-step ``distilled``
    student (whose weights must exist)."""
    from talkgen_core.audio import build_wav2vec2
    from talkgen_core.models import build_dit, build_vae, load_state_dict_file

    if variant not in DEMO_VARIANTS:
        raise ValueError(f"demo model {variant!r} does not exist; choose one of: {', '.join(DEMO_VARIANTS)}")
    dit_file, sampling_preset = DEMO_VARIANTS[variant]
    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    paths = {part: Path(weights_dir) / name for part, name in DEMO_WEIGHT_FILES.items()}
    paths["dit"] = Path(weights_dir) / dit_file
    if variant != "base" and not paths["dit"].is_file():
        raise FileNotFoundError(f"the {variant} demo model needs {paths['dit']}, which is missing; make it with "
                                "python -m talkgen_core.train.distill, or use the base demo model")
    shipped = all(p.is_file() for p in paths.values())
    names = demo_config_names(weights_dir) if shipped else DEMO_MODEL_NAMES
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEMO_SEED)
        dit = build_dit(names["dit"], device=device, seed=DEMO_SEED)
        vae = build_vae(names["vae"], device=device)
        wav2vec2 = build_wav2vec2(names["wav2vec2"], device=device)
    if shipped:
        dit.load_state_dict(load_state_dict_file(paths["dit"], device=device))
        vae.load_state_dict(load_state_dict_file(paths["vae"], device=device))
        wav2vec2.load_state_dict(load_state_dict_file(paths["wav2vec2"], device=device))
    else:
        missing = ", ".join(str(p) for p in paths.values() if not p.is_file())
        warnings.warn(
            f"demo model: no shipped weights ({missing} not found); using random weights, so the video will not "
            "look like a face. Train or download the demo weights into talkgen_core/weights/ to fix this.",
            DemoWeightsWarning,
            stacklevel=3,
        )
    dit.eval().requires_grad_(False)
    vae.eval().requires_grad_(False)
    return DemoNetworks(dit, vae, wav2vec2, random_weights=not shipped, sampling_preset=sampling_preset)
