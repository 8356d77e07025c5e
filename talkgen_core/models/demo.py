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
DEMO_SEED = 0


class DemoWeightsWarning(UserWarning):
    """The demo model runs on random weights because no shipped weights were found."""


@dataclass(frozen=True)
class DemoNetworks:
    dit: nn.Module
    vae: Any  # WanVAE
    wav2vec2: nn.Module
    random_weights: bool


def build_demo_networks(device: Union[str, torch.device] = "cpu", weights_dir: Path = WEIGHTS_DIR) -> DemoNetworks:
    """The demo networks in eval mode: shipped weights when all three files exist, else seeded random weights
    (with a :class:`DemoWeightsWarning`)."""
    from talkgen_core.audio import build_wav2vec2
    from talkgen_core.models import build_dit, build_vae, load_state_dict_file

    paths = {part: Path(weights_dir) / name for part, name in DEMO_WEIGHT_FILES.items()}
    shipped = all(p.is_file() for p in paths.values())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(DEMO_SEED)
        dit = build_dit(DEMO_MODEL_NAMES["dit"], device=device, seed=DEMO_SEED)
        vae = build_vae(DEMO_MODEL_NAMES["vae"], device=device)
        wav2vec2 = build_wav2vec2(DEMO_MODEL_NAMES["wav2vec2"], device=device)
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
    return DemoNetworks(dit, vae, wav2vec2, random_weights=not shipped)
