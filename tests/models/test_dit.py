"""WanDiT: official key set, forward contract, batching, determinism, embeddings and input checks."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers.dit_inputs import dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.configs import DIT_CONFIGS, get_dit_config
from talkgen_core.models.dit import count_parameters, sinusoidal_embedding
from talkgen_core.models.rope import apply_rope, rope_3d_angles, rope_axis_pairs, rope_rotation

FIXTURE = Path(__file__).parents[1] / "fixtures" / "wan21_i2v_14b_infinitetalk_keys.json"


def test_14b_on_meta_has_exactly_the_official_keys_and_shapes():
    want = json.loads(FIXTURE.read_text())
    model = build_dit("wan21-i2v-14b", device="meta")
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert sorted(set(want) - set(got)) == []
    assert sorted(set(got) - set(want)) == []
    assert {k for k in want if want[k] != got[k]} == set()
    assert len(got) == 1633
    # 16.39 B base + 2.487 B InfiniteTalk adapter (reference section 2)
    assert count_parameters(model) == 18_882_046_784
    assert next(model.parameters()).device.type == "meta"


def test_unknown_config_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        build_dit("wan22-ti2v-5b", device="meta")
    for name in DIT_CONFIGS:
        assert name in str(err.value)


def test_config_rejects_inconsistent_sizes():
    with pytest.raises(ValueError, match="not divisible"):
        replace(get_dit_config("tiny"), num_heads=5)
    with pytest.raises(ValueError, match="in_dim"):
        replace(get_dit_config("tiny"), in_dim=16)


def test_rope_split_is_22_21_21_at_head_dim_128_and_positions_start_at_zero():
    assert rope_axis_pairs(128) == (22, 21, 21)
    assert rope_axis_pairs(16) == (4, 2, 2)
    angles = rope_3d_angles((2, 3, 4), 128)
    assert angles.shape == (24, 64) and angles.dtype == torch.float64
    assert torch.all(angles[0] == 0)  # token (0, 0, 0)
    # token (f=1, h=2, w=3): time pairs use theta^(-2i/44), height theta^(-2i/42) at position 2, width at 3
    token = 1 * 12 + 2 * 4 + 3
    i_t, i_s = torch.arange(22, dtype=torch.float64), torch.arange(21, dtype=torch.float64)
    expected = torch.cat([10000.0 ** (-2 * i_t / 44), 2 * 10000.0 ** (-2 * i_s / 42), 3 * 10000.0 ** (-2 * i_s / 42)])
    torch.testing.assert_close(angles[token], expected, rtol=1e-12, atol=1e-12)


def test_apply_rope_rotates_interleaved_pairs_as_complex_numbers():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 3, 16, generator=g)
    angles = torch.rand(6, 8, generator=g, dtype=torch.float64) * 6
    out = apply_rope(x, rope_rotation(angles))
    as_complex = torch.view_as_complex(x.double().reshape(2, 6, 3, 8, 2))
    want = torch.view_as_real(as_complex * torch.polar(torch.ones_like(angles), angles)[None, :, None]).flatten(-2)
    torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)


def test_sinusoidal_timestep_puts_cos_half_first():
    emb = sinusoidal_embedding(torch.tensor([0.0, 1000.0]), 8)
    assert torch.equal(emb[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    freqs = 10000.0 ** (-torch.arange(4, dtype=torch.float64) / 4)
    torch.testing.assert_close(emb[1], torch.cat([torch.cos(1000 * freqs), torch.sin(1000 * freqs)]).float())


def test_forward_shape_and_batch_items_are_independent():
    model = build_dit("tiny", seed=0)
    inputs = dit_inputs(model.config, batch=2)
    with torch.no_grad():
        both = model(**inputs)
        singles = [model(**{k: v[i : i + 1] for k, v in inputs.items()}) for i in range(2)]
    assert both.shape == (2, 16, 3, 8, 8) and both.dtype == torch.float32
    assert torch.isfinite(both).all() and both.std() > 0.1
    torch.testing.assert_close(both, torch.cat(singles), atol=1e-5, rtol=1e-5)


def test_outputs_are_deterministic_under_a_seed():
    inputs = dit_inputs(get_dit_config("tiny"))
    with torch.no_grad():
        a = build_dit("tiny", seed=3)(**inputs)
        b = build_dit("tiny", seed=3)(**inputs)
        c = build_dit("tiny", seed=4)(**inputs)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-2


def test_text_is_zero_padded_to_text_len_inside():
    model = build_dit("tiny", seed=0)
    inputs = dit_inputs(model.config)
    padded = dict(inputs, context=torch.nn.functional.pad(inputs["context"], (0, 0, 0, 11)))  # 5 -> 16 tokens
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs), model(**padded), atol=1e-6, rtol=1e-6)
        too_long = dict(inputs, context=torch.zeros(1, 17, model.config.text_dim))
        with pytest.raises(ValueError, match="text_len"):
            model(**too_long)


def test_clip_and_audio_branches_are_optional_and_change_the_output():
    model = build_dit("tiny", seed=0)
    inputs = dit_inputs(model.config)
    with torch.no_grad():
        full = model(**inputs)
        no_clip = model(**dict(inputs, clip_fea=None))
        no_audio = model(**dict(inputs, audio=None))
        zero_audio = model(**dict(inputs, audio=torch.zeros_like(inputs["audio"])))
        more_images = model(**dict(inputs, clip_fea=torch.randn(1, 7, model.config.clip_dim)))
    for other in (no_clip, no_audio, zero_audio, more_images):
        assert (full - other).abs().max() > 1e-3
    # null audio (zeros) is not "no audio": the adapter's biases still make tokens
    assert (no_audio - zero_audio).abs().max() > 1e-3


def test_unpatchify_matches_the_wan_channel_layout():
    model = build_dit("tiny", device="meta")
    grid = (2, 3, 4)
    out = torch.randn(1, 24, 1 * 2 * 2 * 16)
    got = model._unpatchify(out, grid)[0]
    want = torch.einsum("fhwpqrc->cfphqwr", out[0].view(2, 3, 4, 1, 2, 2, 16)).reshape(16, 2, 6, 8)
    assert torch.equal(got, want)


def test_bf16_compute_is_close_to_fp32():
    model = build_dit("tiny", seed=0)
    inputs = dit_inputs(model.config)
    with torch.no_grad():
        ref = model(**inputs)
        low = model.set_compute_dtype(torch.bfloat16)(**inputs)
    assert low.dtype == torch.float32
    assert (low - ref).abs().mean() / ref.abs().mean() < 0.05


def test_fp8_storage_computes_in_bf16():
    model = build_dit("tiny", dtype=torch.float8_e4m3fn, seed=0)
    assert model.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    assert model.compute_dtype == torch.bfloat16
    with torch.no_grad():
        out = model(**dit_inputs(model.config))
    assert torch.isfinite(out).all()


def test_gradient_checkpointing_gives_the_same_gradients():
    inputs = dit_inputs(get_dit_config("tiny"))
    grads = []
    for checkpointing in (False, True):
        model = build_dit("tiny", seed=0)
        model.gradient_checkpointing = checkpointing
        model(**inputs).square().mean().backward()
        grads.append(model.blocks[0].self_attn.q.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": torch.zeros(1, 15, 3, 8, 8)}, "x must be"),
        ({"x": torch.zeros(1, 16, 3, 7, 8), "cond": torch.zeros(1, 20, 3, 7, 8)}, "divisible"),
        ({"cond": torch.zeros(1, 16, 3, 8, 8)}, "cond must be"),
        ({"audio": torch.zeros(1, 1, 8, 5, 4, 32)}, "per-video-frame windows"),
        ({"context": torch.zeros(1, 5, 31)}, "context must be"),
        ({"clip_fea": torch.zeros(1, 3, 31)}, "clip_fea"),
    ],
)
def test_bad_inputs_get_errors_naming_the_input(change, message):
    model = build_dit("tiny", seed=0)
    with pytest.raises(ValueError, match=message):
        model(**dict(dit_inputs(model.config), **change))


def test_demo_config_is_bigger_than_tiny_and_14b_head_dim_is_128():
    assert count_parameters(build_dit("demo", device="meta")) > 4 * count_parameters(build_dit("tiny", device="meta"))
    assert get_dit_config("wan21-i2v-14b").head_dim == 128
    assert math.isclose(count_parameters(build_dit("wan21-1.3b", device="meta")) / 1e9, 1.85, abs_tol=0.01)


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 0.02), (torch.float8_e4m3fn, 0.15)])
def test_weights_converted_to_a_smaller_dtype_keep_the_output_close(dtype, tolerance):
    from talkgen_core.models.layers import convert_weights

    inputs = dit_inputs(get_dit_config("tiny"))
    reference = build_dit("tiny")(**inputs)
    model = convert_weights(build_dit("tiny"), dtype)
    assert model.blocks[0].self_attn.q.weight.dtype == dtype
    out = model(**inputs)
    assert (out - reference).norm() / reference.norm() < tolerance
    back = convert_weights(model, torch.float32)(**inputs)  # fp8 -> fp32 applies the scale
    assert torch.allclose(back, out, atol=1e-4)


def test_rope_table_is_memoised_per_grid_and_usable_with_autograd_after_inference_mode():
    from talkgen_core.models.rope import rope_3d_table

    with torch.inference_mode():
        table = rope_3d_table((2, 3, 5), 16, 10000.0, torch.device("cpu"))
    assert not table.is_inference()  # made outside inference mode: a training forward may save it
    assert rope_3d_table((2, 3, 5), 16, 10000.0, torch.device("cpu")) is table
    assert torch.equal(table, rope_rotation(rope_3d_angles((2, 3, 5), 16)))
    other = rope_3d_table((2, 5, 3), 16, 10000.0, torch.device("cpu"))  # same token count, another grid
    assert other.shape == table.shape and not torch.equal(other, table)
    x = torch.randn(1, 30, 2, 16, requires_grad=True)
    apply_rope(x, table).sum().backward()
    assert x.grad is not None
