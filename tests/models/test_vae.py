"""Wan2.1 causal video VAE: shapes, streaming equals one pass, tiling, loading, odd sizes, official keys.

All checks use the "tiny" config on CPU in fp32. Streaming and one-pass results differ only by float
reassociation, so they are compared with atol 1e-5 (observed differences are around 1e-6).
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from talkgen_core.models import build_vae
from talkgen_core.models.vae import (
    WAN21_LATENT_MEAN,
    WAN21_LATENT_STD,
    Tiling,
    VideoAutoencoder,
    WanVAE,
    crop_video,
    denormalize_latents,
    load_vae,
    normalize_latents,
    pad_video,
    vae_dtype,
)
from talkgen_core.models.vae_layers import CausalCache, CausalConv3d, FrameAttention, RMSNorm

STREAM_ATOL = 1e-5
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE = FIXTURES / "wan21_vae_keys.json"
REFERENCE = FIXTURES / "wan_vae_tiny_reference.json"


def deterministic_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights seeded per key name (not by construction order), so another implementation can rebuild them."""
    out = {}
    for key, value in model.state_dict().items():
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("gamma"):
            out[key] = torch.rand(value.shape, generator=g) + 0.5
        elif key.endswith("bias"):
            out[key] = torch.randn(value.shape, generator=g) * 0.02
        else:
            fan_in = value[0].numel()
            out[key] = torch.randn(value.shape, generator=g) / fan_in**0.5
    return out


def reference_input() -> torch.Tensor:
    """[1, 3, 9, 32, 48] frames in [-1, 1] for the reference comparison."""
    g = torch.Generator().manual_seed(1234)
    return torch.rand(1, 3, 9, 32, 48, generator=g) * 2 - 1


def _randomised_tiny(seed: int = 0) -> WanVAE:
    """A tiny VAE whose norm gains and attention projections are random too, so every path matters."""
    torch.manual_seed(seed)
    vae = build_vae("tiny")
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, RMSNorm):
                module.gamma.uniform_(0.5, 1.5)
            if isinstance(module, FrameAttention):
                torch.nn.init.normal_(module.proj.weight, std=0.2)
    return vae


@pytest.fixture(scope="module")
def vae() -> WanVAE:
    return _randomised_tiny()


def _frames(t: int, h: int = 16, w: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, t, h, w, generator=g) * 2 - 1


def _latents(t: int, h: int = 2, w: int = 2, seed: int = 2) -> torch.Tensor:
    return torch.randn(1, 16, t, h, w, generator=torch.Generator().manual_seed(seed))


def test_wan21_meta_keys_and_shapes_equal_the_public_file() -> None:
    want = json.loads(FIXTURE.read_text())
    model = build_vae("wan21", device="meta")
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    assert all(p.is_meta for p in model.parameters())


def test_unknown_config_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="tiny.*wan21"):
        build_vae("wan22")


@pytest.mark.parametrize("frames", [1, 5, 81, 161])
def test_shapes_round_trip(vae: WanVAE, frames: int) -> None:
    latents = vae.encode(_frames(frames, h=8, w=16))
    assert latents.shape == (1, 16, 1 + (frames - 1) // 4, 1, 2)
    decoded = vae.decode(latents)
    assert decoded.shape == (1, 3, frames, 8, 16)
    assert decoded.dtype == torch.float32
    assert decoded.abs().max() <= 1.0


def test_protocol_and_strides(vae: WanVAE) -> None:
    assert isinstance(vae, VideoAutoencoder)
    assert (vae.z_dim, vae.temporal_stride, vae.spatial_stride) == (16, 4, 8)


def test_streaming_decode_equals_one_pass(vae: WanVAE) -> None:
    latents = _latents(7)
    one_pass = vae.decode_chunk(latents, vae.new_decode_state())
    assert one_pass.shape[2] == 1 + 4 * 6
    per_latent = vae.decode(latents)  # one latent frame per step
    sizes = [2, 3, 1, 1]
    pieces = list(torch.split(latents, sizes, dim=2))
    irregular = torch.cat(list(vae.decode_stream(iter(pieces), latents_per_step=3)), dim=2)
    torch.testing.assert_close(per_latent, one_pass, atol=STREAM_ATOL, rtol=0)
    torch.testing.assert_close(irregular, one_pass, atol=STREAM_ATOL, rtol=0)


def test_decoding_is_causal(vae: WanVAE) -> None:
    latents = _latents(4)
    changed = latents.clone()
    changed[:, :, 3] += 1.0
    a, b = vae.decode(latents), vae.decode(changed)
    torch.testing.assert_close(a[:, :, :9], b[:, :, :9], atol=STREAM_ATOL, rtol=0)
    assert (a[:, :, 9:] - b[:, :, 9:]).abs().max() > 1e-3


def test_streaming_encode_equals_one_pass(vae: WanVAE) -> None:
    frames = _frames(25)
    one_pass = vae.encode_chunk(frames, vae.new_encode_state())
    assert one_pass.shape[2] == 7
    grouped = vae.encode(frames)  # the first frame, then groups of 4
    sizes = [3, 6, 1, 7, 8]
    irregular = torch.cat(list(vae.encode_stream(iter(torch.split(frames, sizes, dim=2)))), dim=2)
    torch.testing.assert_close(grouped, one_pass, atol=STREAM_ATOL, rtol=0)
    torch.testing.assert_close(irregular, one_pass, atol=STREAM_ATOL, rtol=0)


def test_cache_stays_constant_over_a_long_stream(vae: WanVAE) -> None:
    state = vae.new_decode_state()
    sizes = []
    for latent in torch.split(_latents(12), 1, dim=2):
        vae.decode_chunk(latent, state)
        sizes.append(state.caches[0].nbytes())
    assert sizes[3] > 0
    assert len(set(sizes[3:])) == 1
    assert (state.latents_seen, state.frames_emitted) == (12, 45)


def test_decode_to_hands_chunks_to_the_sink(vae: WanVAE) -> None:
    latents = _latents(3)
    received: list[torch.Tensor] = []
    written = vae.decode_to(latents, received.append)
    assert written == 9 and [c.shape[2] for c in received] == [1, 4, 4]
    torch.testing.assert_close(torch.cat(received, dim=2), vae.decode(latents), atol=0, rtol=0)


def test_tiled_decode_equals_untiled_away_from_seams() -> None:
    # The middle block's attention spans a whole frame, so a tile cannot reproduce it; with its projection
    # at the initial zero that path is local, and pixels beyond the receptive field (about 18 latent cells)
    # from every inner tile edge must come out exactly as without tiling.
    torch.manual_seed(3)
    vae = build_vae("tiny")
    latents = _latents(2, h=2, w=48)
    untiled = vae.decode(latents)
    tiled = vae.decode(latents, tiling=Tiling(tile=256, overlap=128))  # tiles over latent columns 0-32, 16-48
    assert tiled.shape == untiled.shape == (1, 3, 5, 16, 384)
    torch.testing.assert_close(tiled[..., :96], untiled[..., :96], atol=STREAM_ATOL, rtol=0)
    torch.testing.assert_close(tiled[..., 288:], untiled[..., 288:], atol=STREAM_ATOL, rtol=0)
    assert (tiled[..., 128:256] - untiled[..., 128:256]).abs().max() > 1e-4  # the seam really was tiled


def test_tiled_streaming_equals_tiled_one_pass() -> None:
    torch.manual_seed(4)
    vae = build_vae("tiny")
    latents = _latents(3, h=2, w=6)
    tiling = Tiling(tile=32, overlap=16)
    one_pass = vae.decode_chunk(latents, vae.new_decode_state(tiling))
    streamed = vae.decode(latents, tiling=tiling)
    torch.testing.assert_close(streamed, one_pass, atol=STREAM_ATOL, rtol=0)
    encoded = vae.encode(streamed, tiling=tiling)
    assert encoded.shape == latents.shape


def test_latent_normalisation_uses_the_config_statistics(vae: WanVAE) -> None:
    stats = dataclasses.replace(vae.config, latent_mean=WAN21_LATENT_MEAN, latent_std=WAN21_LATENT_STD)
    normalised = WanVAE(stats)
    normalised.load_state_dict(vae.state_dict())
    frames = _frames(5)
    raw, z = vae.encode(frames), normalised.encode(frames)
    mean = torch.tensor(WAN21_LATENT_MEAN).view(1, 16, 1, 1, 1)
    std = torch.tensor(WAN21_LATENT_STD).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(z, (raw - mean) / std, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(normalised.decode(z), vae.decode(raw), atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", ["pth", "safetensors", "prefixed-safetensors"])
def test_load_saved_tiny_model(vae: WanVAE, tmp_path: Path, layout: str) -> None:
    state = {k: v.contiguous() for k, v in vae.state_dict().items()}
    if layout == "pth":
        path = tmp_path / "vae.pth"
        torch.save(state, path)
    else:
        path = tmp_path / "vae.safetensors"
        prefix = "first_stage_model." if layout.startswith("prefixed") else ""
        save_file({prefix + k: v for k, v in state.items()}, str(path))
    loaded = load_vae(path)
    assert loaded.config.name == "tiny"
    latents = _latents(2)
    torch.testing.assert_close(loaded.decode(latents), vae.decode(latents), atol=0, rtol=0)


def test_load_rejects_weights_of_no_known_config(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    small = dataclasses.replace(build_vae("tiny").config, base_dim=4)
    save_file({k: v.contiguous() for k, v in WanVAE(small).state_dict().items()}, str(path))
    with pytest.raises(ValueError, match="no known VAE config"):
        load_vae(path)
    assert load_vae(path, config=small).config.base_dim == 4


def test_odd_frame_count_is_rejected_with_the_fix(vae: WanVAE) -> None:
    with pytest.raises(ValueError, match="pad_video"):
        vae.encode(_frames(6))
    with pytest.raises(ValueError, match="pad_video"):
        list(vae.encode_stream(iter([_frames(3), _frames(4)])))  # 7 frames, found at the end of the stream


def test_odd_frame_size_is_rejected_with_the_fix(vae: WanVAE) -> None:
    with pytest.raises(ValueError, match="multiple of 8.*pad_video"):
        vae.encode(_frames(5, h=20, w=16))


def test_pad_then_crop_restores_the_odd_size(vae: WanVAE) -> None:
    frames = _frames(6, h=20, w=12)
    padded, size = pad_video(frames, spatial_multiple=16)
    assert padded.shape == (1, 3, 9, 32, 16)
    last_frame = frames[:, :, 5:6].expand(-1, -1, 3, -1, -1)
    torch.testing.assert_close(padded[:, :, 6:, :20, :12], last_frame)  # time: the last frame repeated
    bottom_row = frames[:, :, :, 19:20].expand(-1, -1, -1, 12, -1)
    torch.testing.assert_close(padded[:, :, :6, 20:, :12], bottom_row)  # space: edge pixels repeated
    torch.testing.assert_close(crop_video(padded, size), frames)
    latents = vae.encode(frames, pad=True)
    assert latents.shape == (1, 16, 3, 3, 2)
    assert crop_video(vae.decode(latents), size).shape == frames.shape


def test_a_decode_stream_starts_with_the_configured_hold(vae: WanVAE) -> None:
    """The demo config holds its first latent for two latents: frame 0, then two decodes of latent 0 whose
    frames are dropped, so latent 1 meets latent 0 in the temporal upsamplers' history. Official Wan (hold 0,
    as "tiny" and "wan21") decodes the latents as they are."""
    demo = build_vae("demo")
    demo.load_state_dict(vae.state_dict())
    latents = torch.randn(1, 16, 4, 2, 2, generator=torch.Generator().manual_seed(8))
    held = vae.decode(torch.cat([latents[:, :, :1], latents[:, :, :1], latents], dim=2))
    expected = torch.cat([held[:, :, :1], held[:, :, 9:]], dim=2)
    assert (demo.config.stream_start_hold, vae.config.stream_start_hold) == (2, 0)
    torch.testing.assert_close(demo.decode(latents), expected)
    streamed = torch.cat(list(demo.decode_stream(iter([latents[:, :, :1], latents[:, :, 1:]]))), dim=2)
    torch.testing.assert_close(streamed, expected)
    assert (vae.decode(latents) - expected)[:, :, 1:].abs().max() > 1e-3


def test_matches_an_independent_implementation() -> None:
    """Statistics of latents and frames produced from the same key-seeded weights and input by an independent
    Wan2.1 VAE implementation (diffusers 0.42.1 AutoencoderKLWan, keys mapped to the original names)."""
    want = json.loads(REFERENCE.read_text())
    vae = build_vae("tiny")
    vae.load_state_dict(deterministic_state_dict(vae))
    latents = vae.encode(reference_input())  # tiny: identity normalisation, so these are the raw means
    frames = vae.decode(latents)
    assert latents.shape == (1, 16, 3, 4, 6) and frames.shape == (1, 3, 9, 32, 48)
    got_latents = latents.mean(dim=(0, 2, 3, 4))
    got_frames = frames.mean(dim=(0, 1, 3, 4))
    torch.testing.assert_close(got_latents, torch.tensor(want["latent_channel_mean"]), atol=1e-4, rtol=0)
    torch.testing.assert_close(got_frames, torch.tensor(want["frame_mean"]), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        frames[0, :, :, 16, 24].flatten(), torch.tensor(want["centre_pixel"]), atol=1e-4, rtol=0
    )


def test_batch_items_are_independent(vae: WanVAE) -> None:
    frames = torch.cat([_frames(5, seed=7), _frames(5, seed=8)])
    latents = vae.encode(frames)
    torch.testing.assert_close(latents[1:], vae.encode(frames[1:]), atol=STREAM_ATOL, rtol=0)
    torch.testing.assert_close(vae.decode(latents)[:1], vae.decode(latents[:1]), atol=STREAM_ATOL, rtol=0)


def test_module_level_normalisation_round_trips() -> None:
    z = _latents(2)
    normalised = normalize_latents(z, WAN21_LATENT_MEAN, WAN21_LATENT_STD)
    assert normalised[0, 8, 0, 0, 0] == pytest.approx((z[0, 8, 0, 0, 0].item() - 0.4134) / 0.6080, rel=1e-5)
    torch.testing.assert_close(denormalize_latents(normalised, WAN21_LATENT_MEAN, WAN21_LATENT_STD), z)


def test_first_frame_of_a_stream_is_the_zero_padded_3d_convolution() -> None:
    torch.manual_seed(11)
    conv = CausalConv3d(3, 5, 3, padding=1)
    conv.cache_key = "conv"
    frame = torch.randn(2, 3, 1, 6, 7)
    expected = torch.nn.functional.conv3d(
        torch.nn.functional.pad(frame, (1, 1, 1, 1, 2, 0)), conv.weight, conv.bias
    )
    cache = CausalCache()
    got = conv(frame, cache)
    assert got.shape == expected.shape == (2, 5, 1, 6, 7)
    assert torch.allclose(got, expected, atol=1e-6)
    follow = torch.randn(2, 3, 2, 6, 7)
    whole = torch.nn.functional.conv3d(
        torch.nn.functional.pad(torch.cat([frame, follow], 2), (1, 1, 1, 1, 2, 0)), conv.weight, conv.bias
    )
    assert torch.allclose(conv(follow, cache), whole[:, :, 1:], atol=1e-6)


def test_vae_dtype_auto_is_fp32_on_the_cpu_and_names_are_checked() -> None:
    assert vae_dtype("auto", "cpu") == torch.float32
    assert vae_dtype("bf16", "cpu") == torch.bfloat16 and vae_dtype("fp32", "cuda") == torch.float32
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        vae_dtype("int8", "cpu")


def test_bf16_weights_decode_and_encode_close_to_fp32(vae: WanVAE, tmp_path: Path) -> None:
    path = tmp_path / "vae.safetensors"
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(path))
    half = load_vae(path, dtype=vae_dtype("bf16", "cpu"))
    assert next(half.parameters()).dtype == torch.bfloat16
    latents, frames = _latents(3), _frames(5)
    decoded, reference = half.decode(latents), vae.decode(latents)
    assert decoded.dtype == torch.float32  # outputs stay fp32 whatever the weights
    error = (decoded - reference).abs()
    assert error.mean() < 0.012 and error.max() < 0.1  # bf16 rounding (observed 0.006 mean, 0.045 max)
    assert (half.decode(_latents(3, seed=5)) - decoded).abs().mean() > 0.1  # the outputs still depend on the input
    torch.testing.assert_close(half.encode(frames), vae.encode(frames), atol=0.015, rtol=0)  # observed 0.006


def test_full_size_stages_see_at_most_two_frames_per_call(vae: WanVAE) -> None:
    """The working memory of a step is that of 2 new frames at full size when decoding (as ComfyUI's VAE) and of
    1 when encoding (ComfyUI's encoder takes 2)."""
    seen: dict[str, list[int]] = {"decoder": [], "encoder": []}
    hooks = [
        vae.decoder.head[2].register_forward_pre_hook(lambda m, a: seen["decoder"].append(a[0].shape[2])),
        vae.encoder.conv1.register_forward_pre_hook(lambda m, a: seen["encoder"].append(a[0].shape[2])),
    ]
    try:
        decoded = vae.decode_chunk(_latents(4), vae.new_decode_state())  # 13 frames in one call
        vae.encode_chunk(_frames(13), vae.new_encode_state())
    finally:
        for hook in hooks:
            hook.remove()
    assert decoded.shape[2] == 13
    assert max(seen["decoder"]) == 2 and sum(seen["decoder"]) == 13 and len(seen["decoder"]) == 7
    assert seen["encoder"] == [1] * 13


def test_the_stream_cache_never_shares_the_callers_frames(vae: WanVAE) -> None:
    frames = _frames(9)
    expected = vae.encode(frames)
    state = vae.new_encode_state()
    with torch.inference_mode():  # where views do not record what they view
        first, rest = frames[:, :, :1].clone(), frames[:, :, 1:].clone()
        got = [vae.encode_chunk(first, state)]
        first.fill_(0.5)  # the caller reuses its buffer: the stream must not see it
        got.append(vae.encode_chunk(rest, state))
    torch.testing.assert_close(torch.cat(got, dim=2), expected, atol=STREAM_ATOL, rtol=0)
