"""One attention entry point for every attention in the DiT.

Layout contract: ``q`` [B, Lq, H, D], ``k`` / ``v`` [B, Lk, H, D] -> [B, Lq, H, D]; softmax scale 1/sqrt(D).
Backends:

* ``"sdpa"`` (default): ``torch.nn.functional.scaled_dot_product_attention``; runs everywhere and is the only
  backend that takes a boolean ``attn_mask`` (used by mask-routed multi-speaker audio attention).
* ``"flash"``: flash-attn 2/3 (``flash_attn`` / ``flash_attn_interface``), CUDA, fp16/bf16 only.
* ``"sage"``: SageAttention (``sageattention.sageattn``), CUDA, fp16/bf16 only.

A backend that is not importable or cannot run the given tensors raises an error that says why and how to
fix it; nothing falls back silently.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F

ATTENTION_BACKENDS = ("sdpa", "flash", "sage")

_OPTIONAL_MODULES: dict[str, tuple[str, ...]] = {
    "flash": ("flash_attn_interface", "flash_attn"),
    "sage": ("sageattention",),
}


@lru_cache(maxsize=None)
def _optional_kernel(backend: str) -> Callable[..., torch.Tensor] | None:
    """The kernel function of an optional backend, or None when its package is not importable."""
    for module_name in _OPTIONAL_MODULES[backend]:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, "sageattn" if backend == "sage" else "flash_attn_func", None)
        if fn is not None:
            return fn
    return None


def available_backends() -> list[str]:
    """Backends whose packages can be imported here (a GPU is still needed to run the optional ones)."""
    return ["sdpa"] + [b for b in ("flash", "sage") if _optional_kernel(b) is not None]


def check_backend(name: str) -> str:
    """Validate a backend name and its availability; returns the name."""
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(ATTENTION_BACKENDS)}")
    if name != "sdpa" and _optional_kernel(name) is None:
        package = {"flash": "flash-attn", "sage": "sageattention"}[name]
        raise ValueError(
            f"attention backend {name!r} is not importable here; install {package!r} for your CUDA/torch build "
            "or use the default 'sdpa'"
        )
    return name


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    backend: str = "sdpa",
    attn_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention, ``[B, Lq, H, D] x [B, Lk, H, D] -> [B, Lq, H, D]``.

    ``attn_mask`` (sdpa only) is boolean, True = may attend, broadcastable to [B, H, Lq, Lk].
    """
    if backend == "sdpa" or attn_mask is not None:
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=attn_mask
        )
        return out.transpose(1, 2)
    kernel = _optional_kernel(check_backend(backend))
    assert kernel is not None  # check_backend raised otherwise
    if q.device.type != "cuda" or q.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(
            f"attention backend {backend!r} needs CUDA fp16/bf16 tensors, got {q.device.type} {q.dtype}; "
            "use 'sdpa' or compute in bf16 on a GPU"
        )
    if backend == "sage":
        return kernel(q, k.to(q.dtype), v.to(q.dtype), tensor_layout="NHD", is_causal=False)
    out = kernel(q, k.to(q.dtype), v.to(q.dtype))
    return out[0] if isinstance(out, tuple) else out  # flash-attn 3 returns (out, lse)
