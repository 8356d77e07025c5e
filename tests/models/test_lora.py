"""LoRA: key namings, merged (default, restorable) == unmerged, strength and alpha, fp8 weights kept intact, removal, errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from helpers.dit_inputs import dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.lora import LoraError, applied_loras, apply_lora, merge_lora, read_lora

RANK = 4


def _lora_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A LoRA mixing every supported naming: lightx2v-style, PEFT A/B, kohya lora_unet_, diffs."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2  # noqa: E731
    return {
        # lightx2v / official: diffusion_model.<name>.lora_down / lora_up (+ alpha)
        "diffusion_model.blocks.0.self_attn.q.lora_down.weight": r(RANK, 64),
        "diffusion_model.blocks.0.self_attn.q.lora_up.weight": r(64, RANK),
        "diffusion_model.blocks.0.self_attn.q.alpha": torch.tensor(2.0),
        "diffusion_model.blocks.1.ffn.0.lora_down.weight": r(RANK, 64),
        "diffusion_model.blocks.1.ffn.0.lora_up.weight": r(128, RANK),
        # PEFT: <name>.lora_A / lora_B
        "blocks.0.cross_attn.k_img.lora_A.weight": r(RANK, 64),
        "blocks.0.cross_attn.k_img.lora_B.weight": r(64, RANK),
        "blocks.1.audio_cross_attn.kv_linear.lora_A.weight": r(RANK, 32),
        "blocks.1.audio_cross_attn.kv_linear.lora_B.weight": r(128, RANK),
        # kohya: lora_unet_ with underscores
        "lora_unet_blocks_1_self_attn_o.lora_down.weight": r(RANK, 64),
        "lora_unet_blocks_1_self_attn_o.lora_up.weight": r(64, RANK),
        # conv patch embedding
        "diffusion_model.patch_embedding.lora_down.weight": r(RANK, 36, 1, 2, 2),
        "diffusion_model.patch_embedding.lora_up.weight": r(64, RANK, 1, 1, 1),
        # full deltas: linear weight + bias, norm, bare modulation parameter
        "diffusion_model.head.head.diff": r(64, 64),
        "diffusion_model.head.head.diff_b": r(64),
        "diffusion_model.blocks.0.norm3.diff": r(64),
        "diffusion_model.blocks.0.norm3.diff_b": r(64),
        "diffusion_model.blocks.1.modulation.diff": r(1, 6, 64),
        "diffusion_model.text_embedding.0.diff_b": r(64),
    }


def _run(model, inputs):
    with torch.no_grad():
        return model(**inputs)


def test_read_lora_resolves_every_naming():
    model = build_dit("tiny", device="meta")
    patches = read_lora(_lora_state(), model)
    assert set(patches) == {
        "blocks.0.self_attn.q", "blocks.1.ffn.0", "blocks.0.cross_attn.k_img", "blocks.1.audio_cross_attn.kv_linear",
        "blocks.1.self_attn.o", "patch_embedding", "head.head", "blocks.0.norm3", "blocks.1.modulation",
        "text_embedding.0",
    }  # fmt: skip
    assert patches["blocks.0.self_attn.q"].alpha == 2.0
    assert patches["blocks.0.self_attn.q"].low_rank_scale(1.5) == pytest.approx(1.5 * 2.0 / RANK)
    assert patches["blocks.1.ffn.0"].low_rank_scale(0.8) == pytest.approx(0.8)  # no alpha: plain strength


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_merged_equals_unmerged_and_removal_restores(strength, tmp_path):
    inputs = dit_inputs(build_dit("tiny", device="meta").config, batch=2)
    path = tmp_path / "lora.safetensors"
    save_file(_lora_state(), str(path))

    model = build_dit("tiny", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = _run(model, inputs)
    handle = apply_lora(model, path, strength=strength, merge=False)
    unmerged = _run(model, inputs)
    for key in ("blocks.0.self_attn.q.weight", "patch_embedding.weight", "head.head.bias"):
        assert torch.equal(model.state_dict()[key], before[key])  # matmul weights untouched
    handle.remove()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    torch.testing.assert_close(_run(model, inputs), plain, atol=0, rtol=0)

    merged_model = build_dit("tiny", seed=0)
    merged_handle = merge_lora(merged_model, read_lora(path, merged_model), strength=strength)
    merged = _run(merged_model, inputs)
    assert (unmerged - plain).abs().max() > 1e-2
    torch.testing.assert_close(merged, unmerged, atol=2e-5, rtol=2e-5)
    with pytest.raises(LoraError, match="cannot be removed"):
        merged_handle.remove()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_default_merge_equals_unmerged_and_restores_the_originals_bit_for_bit(dtype):
    """The default (merged, removable) path: no hooks on plain weights, same output, exact originals back."""
    inputs = dit_inputs(build_dit("tiny", device="meta").config, batch=2)
    model = build_dit("tiny", dtype=dtype, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = _run(model, inputs)
    with applied_loras(model, [(_lora_state(), 0.7), (_lora_state(seed=1), 0.5)], merge=False):
        unmerged = _run(model, inputs)
    with applied_loras(model, [(_lora_state(), 0.7), (_lora_state(seed=1), 0.5)]) as handles:
        assert not any(h.hooks for h in handles)  # every matmul weight took its delta
        assert not torch.equal(model.blocks[0].self_attn.q.weight, before["blocks.0.self_attn.q.weight"])
        merged = _run(model, inputs)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    torch.testing.assert_close(_run(model, inputs), plain, atol=0, rtol=0)
    assert (unmerged - plain).abs().max() > 1e-2
    # fp32: merging only reorders the sums; bf16: the merged weight is rounded once to bf16
    tolerance = 2e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(merged, unmerged, atol=tolerance, rtol=tolerance)


def test_strength_zero_changes_nothing_and_alpha_scales_like_up():
    inputs = dit_inputs(build_dit("tiny", device="meta").config)
    model = build_dit("tiny", seed=0)
    plain = _run(model, inputs)
    handle = apply_lora(model, _lora_state(), strength=0.0)
    torch.testing.assert_close(_run(model, inputs), plain, atol=1e-6, rtol=0)
    handle.remove()
    g = torch.Generator().manual_seed(1)
    down, up = torch.randn(RANK, 128, generator=g), torch.randn(64, RANK, generator=g)
    with_alpha = {"blocks.0.ffn.2.lora_A.weight": down, "blocks.0.ffn.2.lora_B.weight": up,
                  "blocks.0.ffn.2.alpha": torch.tensor(1.0)}  # fmt: skip
    scaled_up = {"blocks.0.ffn.2.lora_A.weight": down, "blocks.0.ffn.2.lora_B.weight": up / RANK}
    a = build_dit("tiny", seed=0)
    merge_lora(a, read_lora(with_alpha, a))
    b = build_dit("tiny", seed=0)
    merge_lora(b, read_lora(scaled_up, b))
    torch.testing.assert_close(a.blocks[0].ffn[2].weight, b.blocks[0].ffn[2].weight)
    assert (a.blocks[0].ffn[2].weight - model.blocks[0].ffn[2].weight).abs().max() > 1e-2


def test_unmerged_keeps_fp8_weights_and_merging_into_fp8_is_refused():
    inputs = dit_inputs(build_dit("tiny", device="meta").config)
    model = build_dit("tiny", dtype=torch.float8_e4m3fn, seed=0)
    weight = model.blocks[0].self_attn.q.weight.clone()
    plain = _run(model, inputs)
    lora = {k: v for k, v in _lora_state().items() if ".lora_" in k or k.endswith(".alpha")}
    handle = apply_lora(model, lora)  # merge by default, but fp8 layers are hooked instead
    assert len(handle.hooks) == 6
    assert model.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    assert torch.equal(model.blocks[0].self_attn.q.weight.view(torch.uint8), weight.view(torch.uint8))
    assert (_run(model, inputs) - plain).abs().max() > 1e-2
    handle.remove()
    with pytest.raises(LoraError, match="fp8"):
        merge_lora(model, read_lora(lora, model))


def test_lora_errors_name_the_keys():
    model = build_dit("tiny", device="meta")
    with pytest.raises(LoraError, match="name no layer.*blocks.7.self_attn.q"):
        read_lora({"diffusion_model.blocks.7.self_attn.q.lora_down.weight": torch.zeros(2, 64)}, model)
    with pytest.raises(LoraError, match="no known form"):
        read_lora({"blocks.0.self_attn.q.hada_w1_a": torch.zeros(2, 64)}, model)
    with pytest.raises(LoraError, match="only one of the down/up"):
        read_lora({"blocks.0.self_attn.q.lora_A.weight": torch.zeros(2, 64)}, model)
    with pytest.raises(LoraError, match="no such parameter"):
        apply_lora(build_dit("tiny", seed=0), {"blocks.0.norm1.diff": torch.zeros(64)})


def test_applied_loras_context_stacks_and_restores_even_on_error(tmp_path):
    inputs = dit_inputs(build_dit("tiny", device="meta").config)
    path = tmp_path / "lora.safetensors"
    save_file(_lora_state(), str(path))
    model = build_dit("tiny", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = _run(model, inputs)
    with applied_loras(model, [(path, 0.5), (path, 0.5)]) as handles:
        twice_half = _run(model, inputs)
    assert len(handles) == 2
    once_full = build_dit("tiny", seed=0)
    merge_lora(once_full, read_lora(path, once_full))
    torch.testing.assert_close(twice_half, _run(once_full, inputs), atol=2e-5, rtol=2e-5)
    with pytest.raises(RuntimeError, match="boom"):
        with applied_loras(model, [(path, 1.0)]):
            raise RuntimeError("boom")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    torch.testing.assert_close(_run(model, inputs), plain, atol=0, rtol=0)
