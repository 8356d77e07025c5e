"""Models: the audio-conditioned Wan2.1 DiT, the Wan2.1 video VAE, checkpoint loading and LoRA.

Names are resolved lazily so that ``import talkgen_core.models`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # name -> submodule that defines it
    "build_dit": "dit",
    "build_vae": "vae",
    "load_state_dict_file": "checkpoint",
    "WanDiT": "dit",
    "DiTConfig": "configs",
    "get_dit_config": "configs",
    "DIT_CONFIGS": "configs",
    "load_dit": "checkpoint",
    "describe_checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "apply_lora": "lora",
    "merge_lora": "lora",
    "read_lora": "lora",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
