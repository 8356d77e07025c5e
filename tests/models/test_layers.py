"""Leaf layers: the CPU's half-precision GEMM through float32 and the patch embedding as one GEMM give the numbers
of ``F.linear`` / ``F.conv3d``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from talkgen_core.models import layers
from talkgen_core.models.layers import CastConv3d, CastLinear, linear


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_linear_equals_f_linear_up_to_summation_order(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 64, 256, generator=g).to(dtype)
    w = (torch.randn(192, 256, generator=g) * 0.05).to(dtype)
    b = torch.randn(192, generator=g).to(dtype)
    got, want = linear(x, w, b), F.linear(x, w, b)
    assert got.dtype == dtype and got.shape == want.shape
    if dtype == torch.float32:
        assert torch.equal(got, want)  # the plain call
    else:  # float32 accumulation on both paths: rare one-ulp flips of the final rounding
        ulp = torch.finfo(dtype).eps * want.float().abs().clamp(min=1.0)
        assert ((got.float() - want.float()).abs() <= ulp).all()
        assert (got != want).float().mean() < 1e-2


def test_half_precision_runs_as_float32_gemm_only_where_the_cpu_lacks_it():
    for dtype in layers._CPU_SLOW_HALF_GEMM:
        assert dtype in (torch.bfloat16, torch.float16)
        assert not layers._cpu_multiplies_natively(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 36, 5, 30, 52), (2, 36, 3, 9, 11)])  # the second drops incomplete patches
def test_patch_embedding_as_one_gemm_equals_the_convolution(dtype, shape):
    torch.manual_seed(0)
    conv = CastConv3d(36, 64, kernel_size=(1, 2, 2), stride=(1, 2, 2)).to(dtype)
    x = torch.randn(*shape).to(dtype)
    got = conv(x)
    want = F.conv3d(x, conv.weight, conv.bias, stride=conv.stride)
    assert got.shape == want.shape and got.dtype == dtype
    tol = 2e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(got, want, rtol=tol, atol=tol * want.abs().max().item())


def test_cast_linear_with_bf16_weights_and_input_matches_f_linear():
    torch.manual_seed(0)
    layer = CastLinear(128, 96).to(torch.bfloat16)
    x = torch.randn(4, 128).to(torch.bfloat16)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-2, atol=1e-2)
