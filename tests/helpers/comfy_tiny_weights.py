"""Tiny ``comfy-tiny`` weight files under the official keys, written by our own code: the base DiT (what ComfyUI's
Load Diffusion Model reads) and the InfiniteTalk adapter (audio projection and per-block audio layers)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

from talkgen_core.models import build_dit

BASE, ADAPTER = "comfy-tiny-base.safetensors", "comfy-tiny-adapter.safetensors"


def is_audio_key(key: str) -> bool:
    return key.startswith("audio_proj.") or ".norm_x." in key or ".audio_cross_attn." in key


def write_tiny_files(base_folder: Path, adapter_folder: Path, seed: int = 3) -> tuple[Path, Path]:
    state = build_dit("comfy-tiny", seed=seed).state_dict()
    base_folder.mkdir(parents=True, exist_ok=True)
    adapter_folder.mkdir(parents=True, exist_ok=True)
    base, adapter = base_folder / BASE, adapter_folder / ADAPTER
    save_file({k: v for k, v in state.items() if not is_audio_key(k)}, str(base))
    save_file({k: v for k, v in state.items() if is_audio_key(k)}, str(adapter))
    return base, adapter
