"""``doctor``: what this machine can run: torch, devices, dtypes, attention backends, model files."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
from pathlib import Path

import torch

# Where the doctor looks for weight files when --models-dir is not given (ComfyUI layout).
MODEL_SUBFOLDERS = ("diffusion_models", "model_patches", "audio_encoders", "vae", "loras", "clip_vision")
WEIGHT_SUFFIXES = (".safetensors", ".sft", ".pth", ".pt", ".bin", ".gguf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir",
        type=Path,
        action="append",
        help="a ComfyUI models/ folder (or any folder) to list weight files from; repeatable. "
        "Default: $COMFYUI_DIR/models when COMFYUI_DIR is set.",
    )


def _dtype_works(dtype: torch.dtype, device: torch.device) -> bool:
    try:
        a = torch.ones(4, 4, device=device).to(dtype)
        (a.float() @ a.float()).sum().item()
        return True
    except (RuntimeError, TypeError):
        return False


def _compile_usable() -> str:
    try:
        fn = torch.compile(lambda x: x * 2 + 1, backend="eager")
        fn(torch.ones(2))
        return "yes"
    except Exception as exc:  # any failure means "not usable here"; report why
        return f"no ({exc.__class__.__name__})"


def _optional_module(name: str, needs_cuda: bool) -> str:
    if importlib.util.find_spec(name) is None:
        return "not installed"
    if needs_cuda and not torch.cuda.is_available():
        return "installed, unusable without CUDA"
    return "usable"


def _model_files(folders: list[Path]) -> list[tuple[Path, int]]:
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in WEIGHT_SUFFIXES and path.is_file():
                found.append((path, path.stat().st_size))
    return found


def run(args: argparse.Namespace) -> int:
    print(f"python      {platform.python_version()} ({platform.machine()})")
    print(f"torch       {torch.__version__}")
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            print(f"cuda:{i}      {props.name}, {props.total_memory / 2**30:.1f} GiB, sm_{props.major}{props.minor}")
        devices.append(torch.device("cuda"))
    else:
        print("cuda        not available (CPU only)")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(torch.device("mps"))
        print("mps         available")
    for device in devices:
        dtypes = [torch.float32, torch.bfloat16, torch.float16]
        if hasattr(torch, "float8_e4m3fn"):
            dtypes.append(torch.float8_e4m3fn)
        usable = [str(d).replace("torch.", "") for d in dtypes if _dtype_works(d, device)]
        print(f"dtypes      {device.type}: {', '.join(usable)}")
    print("attention   sdpa: usable (PyTorch built-in)")
    print(f"            flash_attn: {_optional_module('flash_attn', needs_cuda=True)}")
    print(f"            sageattention: {_optional_module('sageattention', needs_cuda=True)}")
    print(f"compile     torch.compile: {_compile_usable()}")
    print(f"audio       torchaudio: {_optional_module('torchaudio', needs_cuda=False)} (optional, never required)")
    encoders = [f"{m}: {_optional_module(m, needs_cuda=False)}" for m in ("transformers", "sentencepiece")]
    print(f"encoders    {', '.join(encoders)} (--text-encoder / --clip-vision: pip install 'talkgen[encoders]')")
    folders = list(args.models_dir or [])
    if not folders and os.environ.get("COMFYUI_DIR"):
        root = Path(os.environ["COMFYUI_DIR"]) / "models"
        folders = [root / sub for sub in MODEL_SUBFOLDERS]
    if not folders:
        print("models      no folder given (use --models-dir or set COMFYUI_DIR)")
        return 0
    files = _model_files(folders)
    print(f"models      {len(files)} weight file(s) in {len(folders)} folder(s)")
    for path, size in files:
        print(f"            {path} ({size / 2**20:.1f} MiB, {_kind(path)})")
    return 0


def _kind(path: Path) -> str:
    """What a weight file holds, from its key names (safetensors headers only; pickles are not opened)."""
    from talkgen_core.models.checkpoint import classify_keys, normalise_keys, read_tensor_specs, strip_dit_prefix

    if path.suffix.lower() not in (".safetensors", ".sft"):
        return "not inspected: check it with check-model"
    try:
        specs = read_tensor_specs(path)
    except Exception as exc:  # an unreadable header: say so instead of failing the whole report
        return f"unreadable ({exc.__class__.__name__})"
    return classify_keys(normalise_keys(specs, strip_dit_prefix(specs)))
