"""What is wrong with a weight file: a plain diagnosis of a damaged safetensors file, and a scan for NaN/Inf.

safetensors reports damage as "Error while deserializing header: header too large" without the file's name;
users hit it with interrupted downloads, Git LFS pointers, HTML error pages and pickles saved under the wrong
suffix. Non-finite weights load silently and render a black video, so every loaded tensor is scanned.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
import torch

SNIFF_BYTES = 64
# file starts that tell what a mis-named file really is
_SIGNATURES = (
    (b"version https://git-lfs", "a Git LFS pointer, not the weights: fetch the real file (git lfs pull) or "
                                 "download it from the model page"),
    (b"<!doctype html", "a web page (a failed or login-walled download): download the file again"),
    (b"<html", "a web page (a failed or login-walled download): download the file again"),
    (b"PK\x03\x04", "a PyTorch .pth/.pt archive with a .safetensors name: rename it to .pth"),
    (b"\x80", "a pickle with a .safetensors name: rename it to .pth (it is read without executing code)"),
)


def safetensors_problem(path: Path, error: Exception) -> str:
    """Why ``path`` could not be read as safetensors, and what to do, from the error and the file's first bytes.

    A safetensors file starts with its header's length (8 bytes, little endian) and then the JSON header.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        start = f.read(SNIFF_BYTES)
    if size < 8:
        return f"{path} is empty or cut off ({size} bytes): download it again"
    shaped = len(start) > 8 and start[8:9] == b"{"  # the layout is right: the file is damaged, not mis-named
    if not shaped:
        for signature, meaning in _SIGNATURES:
            if start.lower().startswith(signature.lower()):
                return f"{path} is not a safetensors file but {meaning}"
    text = str(error)
    header_end = 8 + int.from_bytes(start[:8], "little") if shaped else 0
    if (shaped and header_end > size) or "not fully covered" in text or "incomplete" in text:
        return (f"{path} is truncated ({size:,} bytes, shorter than its header says; an interrupted download or "
                "copy): download it again")
    if not shaped:
        return (f"{path} is not a safetensors file (it does not start with a safetensors header): check that it "
                "is the file the model page offers, or download it again")
    return f"{path} has a damaged safetensors header ({text}): download it again"


def _all_finite(tensor: torch.Tensor) -> bool:
    """One float32 sum per tensor (NaN and Inf propagate; no tensor-sized temporary), confirmed exactly when the
    sum is not finite, which a huge but finite float64 tensor can also cause."""
    if bool(torch.isfinite(tensor.sum(dtype=torch.float32))):
        return True
    wide = tensor if tensor.element_size() > 1 else tensor.to(torch.float16)  # fp8 has no isfinite kernel
    return bool(torch.isfinite(wide).all())


def non_finite_keys(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys of the floating-point tensors that hold NaN or infinite values (integer tensors cannot)."""
    return [key for key, tensor in state.items()
            if tensor.is_floating_point() and tensor.numel() and not _all_finite(tensor)]


def non_finite_message(path: Path, keys: list[str]) -> str:
    """The error for a file whose tensors ``keys`` (at least one) are not finite."""
    more = f" and {len(keys) - 1} more tensors" if len(keys) > 1 else ""
    return (f"{path}: tensor {keys[0]!r}{more} holds NaN or infinite values (a damaged file, or one saved from a "
            "diverged training run); it would render a black video: download the file again or use another one")
