"""Reading weight files safely: safetensors, or pickle-based files through ``torch.load(weights_only=True)``.

Shared by the DiT, the VAE and the audio encoder loaders. Pickle files are never unpickled with code
execution enabled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file as _load_safetensors

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def load_state_dict_file(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load one weight file into a flat ``{key: tensor}`` dict, keeping the stored dtypes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(str(path), device=str(device))
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
