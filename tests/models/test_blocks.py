"""WanBlock's fused modulation and gating: the same numbers as the plain float32 formulas, the block's input
never written, and a batch with one timestep equal to the same items run one by one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.dit_inputs import dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.blocks import BlockInputs, WanBlock, add_residual, modulated_norm
from talkgen_core.models.layers import FP32LayerNorm


def _plain_block_forward(block: WanBlock, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
    """The block as written before the fusion: unfused float32 chains with float copies of every branch output."""
    cd = inputs.compute_dtype
    mod = (block.modulation.float() + inputs.time_mod).unsqueeze(2)
    shift1, scale1, gate1, shift2, scale2, gate2 = mod.unbind(1)
    y, _ = block.self_attn((block.norm1(x) * (1 + scale1) + shift1).to(cd), inputs, None)
    x = x + y.float() * gate1
    x = x + block.cross_attn(block.norm3(x).to(cd), inputs.text, inputs.image, inputs.backend).float()
    x = x + block.audio_cross_attn(block.norm_x(x).to(cd), inputs.audio, inputs.grid, inputs.routing, None).float()
    y = block.ffn((block.norm2(x) * (1 + scale2) + shift2).to(cd))
    return x + y.float() * gate2


def _block_inputs(model, batch: int, time_batch: int) -> tuple[torch.Tensor, BlockInputs]:
    """The residual stream and BlockInputs that ``model``'s first block receives in a real forward."""
    captured = {}
    hook = model.blocks[0].register_forward_pre_hook(lambda module, args: captured.update(args=args))
    inputs = dit_inputs(model.config, batch=batch, frames=2, size=8)
    inputs["t"] = inputs["t"][:1].expand(batch) if time_batch == 1 else inputs["t"]
    with torch.no_grad():
        model(**inputs)
    hook.remove()
    return captured["args"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("time_batch", [1, 2])  # 1: one timestep shared by the batch (the fused-norm path)
def test_fused_block_equals_the_plain_float32_formulas(dtype, time_batch):
    torch.manual_seed(0)
    model = build_dit("tiny", dtype=dtype).eval()
    x, inputs = _block_inputs(model, batch=2, time_batch=time_batch)
    assert inputs.time_mod.shape[0] == time_batch  # a shared timestep gives one modulation vector
    block = model.blocks[0]
    before = x.clone()
    with torch.no_grad():
        fused = block(x, inputs)
        plain = _plain_block_forward(block, x, inputs)
    assert torch.equal(x, before)  # in-place accumulation never touches the block's input
    assert fused.dtype == torch.float32 and fused.is_contiguous()
    # float32 rounding only (addcmul's fused multiply-add); in bf16 the rare flipped bf16 rounding of an input
    # to a linear layer stays far below bf16's own error
    tol = 2e-6 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(fused, plain, rtol=tol, atol=tol * plain.abs().max().item())


def test_block_backward_matches_the_plain_formulas():
    torch.manual_seed(0)
    model = build_dit("tiny").train()
    x, inputs = _block_inputs(model, batch=1, time_batch=1)
    block = model.blocks[0]
    grads = []
    for forward in (block, lambda x_, i_: _plain_block_forward(block, x_, i_)):
        leaf = x.detach().clone().requires_grad_(True)
        forward(leaf, inputs).square().sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)


def test_modulated_norm_and_add_residual_match_their_formulas():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=g)
    norm = FP32LayerNorm(16, 1e-6, elementwise_affine=False)
    plain = nn.functional.layer_norm(x, (16,), eps=1e-6)
    for rows in (1, 3):  # one modulation vector for the batch (single layer-norm pass) or one per item
        shift, scale = torch.randn(rows, 1, 16, generator=g), torch.randn(rows, 1, 16, generator=g)
        torch.testing.assert_close(modulated_norm(norm, x, shift, scale), plain * (1 + scale) + shift)
    y = torch.randn(3, 5, 16, generator=g).bfloat16()
    gate = torch.randn(3, 1, 16, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(add_residual(x.clone(), y, gate), x + y.float() * gate)
        assert torch.equal(add_residual(x.clone(), y), x + y.float())
    out = add_residual(x.clone().requires_grad_(True), y, gate)  # autograd on: out of place
    assert out.grad_fn is not None


def test_one_shared_timestep_gives_the_batch_the_same_velocity_as_single_items():
    torch.manual_seed(0)
    model = build_dit("tiny").eval()
    inputs = dit_inputs(model.config, batch=2)
    inputs["t"] = torch.full((2,), 640.0)
    with torch.no_grad():
        batched = model(**inputs)
        singles = [model(**{k: v[i : i + 1] for k, v in inputs.items()}) for i in range(2)]
    torch.testing.assert_close(batched, torch.cat(singles), rtol=1e-5, atol=1e-5)
