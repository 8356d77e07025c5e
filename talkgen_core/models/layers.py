"""Leaf layers that keep weights in their stored dtype and compute in the dtype of their input.

Weights may be fp32 / bf16 / fp16, or fp8 (e4m3fn / e5m2) / int8 codes with a ``scale_weight``: per tensor
(ComfyUI "scaled fp8" files) or per output channel, ``[out, 1]`` (MeiGen's optimum-quanto and LightX2V's int8 /
fp8 files; ``quant_formats``). ``scale_weight`` is a non-persistent buffer, so the state-dict keys stay
exactly the official ones; the checkpoint loader attaches it after a strict load. The codes stay 8-bit in
memory; each call de-quantises the layer's weight for that call only.
Norms always compute in float32.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def dequantize(weight: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``weight`` in ``dtype``, multiplied by its scale (per tensor, or ``[out, 1]`` per output channel) when it
    has one."""
    w = weight.to(dtype)
    if scale is not None:
        w = w * scale.to(dtype)
    return w


def _cpu_multiplies_natively(dtype: torch.dtype) -> bool:
    """Whether this CPU has dot-product instructions for ``dtype`` (bf16: AVX512-BF16 or AMX; fp16: AMX, whose CPUs
    also have AVX512-FP16). Private torch probes, read once at import; a torch without them reads as "no"."""

    def probe(name: str) -> bool:
        return bool(getattr(torch.cpu, name, lambda: False)())

    if dtype == torch.bfloat16:
        return probe("_is_avx512_bf16_supported") or probe("_is_amx_tile_supported")
    return probe("_is_amx_tile_supported") or probe("_is_amx_fp16_supported")


# half-precision dtypes whose CPU GEMMs run 5-7x slower than float32's here (oneDNN emulates them on AVX2)
_CPU_SLOW_HALF_GEMM = frozenset(d for d in (torch.bfloat16, torch.float16) if not _cpu_multiplies_natively(d))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` in ``x``'s dtype (``weight`` and ``bias`` already in it).

    On a CPU without half-precision dot products, a bf16 / fp16 product is computed as a float32 GEMM of the same
    (exactly representable) operands and rounded back once: both accumulate in float32, so the results are equal
    up to summation order (about 1 element in 10^4 differs by one bf16 ulp), 5-7x faster there.
    """
    if x.device.type == "cpu" and x.dtype in _CPU_SLOW_HALF_GEMM:
        b = None if bias is None else bias.float()
        return F.linear(x.float(), weight.float(), b).to(x.dtype)
    return F.linear(x, weight, bias)


class CastLinear(nn.Linear):
    """``nn.Linear`` whose stored weight is cast (and de-scaled) to the input dtype at call time."""

    scale_weight: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **factory: Any) -> None:
        super().__init__(in_features, out_features, bias=bias, **factory)
        self.register_buffer("scale_weight", None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = dequantize(self.weight, self.scale_weight, x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return linear(x, w, b)


class CastConv3d(nn.Conv3d):
    """``nn.Conv3d`` (used as the patch embedding) with the same stored-dtype handling as ``CastLinear``."""

    scale_weight: torch.Tensor | None

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int],
                 stride: tuple[int, int, int], **factory: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size=kernel_size, stride=stride, **factory)
        self.register_buffer("scale_weight", None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = dequantize(self.weight, self.scale_weight, x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        if x.device.type == "cpu" and tuple(self.kernel_size) == tuple(self.stride) and self.groups == 1:
            return patch_linear(x, w, b, self.stride)
        return F.conv3d(x, w, b, stride=self.stride)


def patch_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, patch: tuple[int, int, int]
) -> torch.Tensor:
    """A Conv3d whose kernel is its stride (non-overlapping patches, no padding) as one GEMM over the patches.

    ``x`` [B, C, T, H, W], ``weight`` [O, C, pt, ph, pw] -> [B, O, T / pt, H / ph, W / pw] (a channels-last view).
    The CPU runs a batch-1 Conv3d with its slow reference kernel; this is the same sum over C * pt * ph * pw taps.
    """
    pt, ph, pw = patch
    b, c = x.shape[:2]
    t, h, w = x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw
    x = x[:, :, : t * pt, : h * ph, : w * pw]  # a conv drops the incomplete patches at the end
    cols = x.reshape(b, c, t, pt, h, ph, w, pw).permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t, h, w, c * pt * ph * pw)
    return linear(cols, weight.reshape(weight.shape[0], -1), bias).permute(0, 4, 1, 2, 3)  # [B, O, t, h, w]


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (affine or not); returns float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps)


class RMSNorm(nn.Module):
    """RMS norm over the last dimension with a learned weight; normalises in float32, returns input dtype."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight.to(x.dtype)


class CoreOperations:
    """The layer classes a model is built from (``operations=``), as ComfyUI's models take theirs.

    Every constructor in ``models/`` builds its leaf layers as ``operations.Linear(in, out)``,
    ``operations.Conv3d(in, out, kernel_size=, stride=)``, ``operations.LayerNorm(dim, eps=, elementwise_affine=)``
    and ``operations.RMSNorm(dim, eps=)``. These are the core's own; a host passes its own namespace with the same
    four names and signatures (ComfyUI: ``comfy.ops.manual_cast``), whose layers its memory manager can leave on
    the CPU and cast layer by layer (partial loading). Host layers keep the host's numerics (its norms compute in
    the input dtype) and carry no ``scale_weight``, so fp8-scaled weights need these.
    """

    Linear = CastLinear
    Conv3d = CastConv3d
    LayerNorm = FP32LayerNorm
    RMSNorm = RMSNorm


FP8_E4M3_MAX = 448.0  # largest finite float8_e4m3fn value


@torch.no_grad()
def convert_weights(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store every linear / conv weight of ``model`` in ``dtype`` (in place), to trade precision for memory.

    fp8 (e4m3fn) gets a per-tensor scale (max |w| maps to 448), kept in ``scale_weight`` as scaled-fp8 files
    do; going back from fp8 applies the scale. Biases and norms stay as they are. Host layers (see
    ``CoreOperations``) take the plain dtypes; fp8 needs the core's layers, which carry the scale.
    """
    for module in model.modules():
        if not isinstance(module, (nn.Linear, nn.Conv3d)):
            continue
        scaled = hasattr(module, "scale_weight")
        if dtype == torch.float8_e4m3fn and not scaled:
            raise ValueError(
                f"fp8 weights need the core's layers (they keep the per-tensor scale); {type(module).__name__} is "
                "a host layer: build the model with the default operations for fp8"
            )
        weight = dequantize(module.weight, getattr(module, "scale_weight", None), torch.float32)
        scale = None
        if dtype == torch.float8_e4m3fn:
            scale = (weight.abs().amax() / FP8_E4M3_MAX).clamp(min=torch.finfo(torch.float32).tiny)
            weight = weight / scale
        module.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
        if scaled:
            module.scale_weight = scale
    return model
