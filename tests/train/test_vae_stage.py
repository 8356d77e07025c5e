from dataclasses import replace

import torch

from talkgen_core.models.vae import build_vae
from talkgen_core.models.vae_layers import CausalCache, Resample
from talkgen_core.train.data import to_model_pixels
from talkgen_core.train.latents import encode_video
from talkgen_core.train.vae_stage import (
    decode_raw,
    encode_mean,
    fold_latent_normalisation,
    decoder_temporal_parameters,
    inflate_temporal_init,
    latent_statistics,
    sample_vae_batch,
    train_only_decoder_temporal,
    vae_loss,
)


def _fit(vae, batch, steps: int, lr: float) -> list[float]:
    """Adam on the VAE's trainable weights for ``steps`` steps on one batch; the L1 after each step."""
    opt = torch.optim.Adam([p for p in vae.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss, l1 = vae_loss(vae, batch, 1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(l1.item())
    return losses


def test_one_pass_encoder_equals_streaming_encode(clip_bank):
    torch.manual_seed(1)
    vae = build_vae("tiny")
    frames = to_model_pixels(clip_bank.frames[0, :9]).permute(1, 0, 2, 3).unsqueeze(0)
    assert torch.allclose(encode_video(vae, frames), vae.encode(frames), atol=1e-5)


def test_folding_normalises_latents_and_keeps_reconstruction(clip_bank):
    torch.manual_seed(2)
    vae = build_vae("tiny")
    frames = to_model_pixels(clip_bank.frames[1, :9]).permute(1, 0, 2, 3).unsqueeze(0)
    with torch.no_grad():
        before = vae.decode(vae.encode(frames))
        mean, std = latent_statistics(vae, clip_bank)
        fold_latent_normalisation(vae, mean, std)
        after = vae.decode(vae.encode(frames))
        new_mean, new_std = latent_statistics(vae, clip_bank)
    assert torch.allclose(before, after, atol=1e-4)
    assert new_mean.abs().max().item() < 1e-3
    assert (new_std - 1.0).abs().max().item() < 1e-3


def test_few_vae_steps_lower_the_reconstruction_loss(clip_bank, smoke_config):
    torch.manual_seed(3)
    vae = build_vae("tiny").train()
    inflate_temporal_init(vae)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    batch = sample_vae_batch(clip_bank, smoke_config, torch.Generator().manual_seed(0), single_frames=True)
    losses = _fit(vae, batch, steps=60, lr=1e-3)
    assert losses[-1] < 0.6 * losses[0], losses
    # single frames never reach the temporal resampling, so the image phase keeps it as initialised
    unchanged = {k for k, v in vae.state_dict().items() if torch.equal(v, before[k])}
    assert {k for k in before if ".time_conv." in k} <= unchanged
    assert len(unchanged) < len(before) / 2


def test_batch_and_mouth_weights(clip_bank, smoke_config):
    batch = sample_vae_batch(clip_bank, smoke_config, torch.Generator().manual_seed(5))
    c = smoke_config
    assert batch.frames.shape == (c.vae_batch, 3, c.vae_frames, c.size, c.size)  # clips: whole frames
    assert batch.weights.shape == (c.vae_batch, 1, c.vae_frames, c.size, c.size)
    assert batch.weights.min().item() >= 1.0
    assert batch.weights.max().item() <= 1.0 + c.vae_mouth_weight + 1e-6
    recon = decode_raw(build_vae("tiny"), encode_mean(build_vae("tiny"), batch.frames))
    assert recon.shape == batch.frames.shape
    single = sample_vae_batch(clip_bank, c, torch.Generator().manual_seed(5), single_frames=True)
    assert single.frames.shape == (c.vae_image_batch, 3, 1, c.vae_crop, c.vae_crop)


def test_inflated_vae_treats_every_frame_like_the_first(clip_bank):
    """After inflation a still clip decodes to its first frame's image reconstruction in every frame (latent 1
    only with the hold the demo config's decode streams start with), and a frame ignores latents more than
    two back."""
    torch.manual_seed(4)
    vae = build_vae("demo")
    inflate_temporal_init(vae)
    frame = to_model_pixels(clip_bank.frames[0, :1]).permute(1, 0, 2, 3).unsqueeze(0)  # [1, 3, 1, H, W]
    with torch.no_grad():
        image = decode_raw(vae, encode_mean(vae, frame))
        still_latents = encode_mean(vae, frame.expand(-1, -1, 13, -1, -1))  # latents 0 .. 3
        plain = vae.decoder(vae.conv2(still_latents), CausalCache())  # no hold
        held = vae.decode(vae.normalize_latents(still_latents))  # the demo config's streams start with a hold
        moving = to_model_pixels(clip_bank.frames[0, :17]).permute(1, 0, 2, 3).unsqueeze(0)
        swapped = moving.clone()
        swapped[:, :, :5] = moving[:, :, :5].flip(2)  # new frames 0..4 (latents 0 and 1), the rest as before
        late = decode_raw(vae, encode_mean(vae, moving))[:, :, 13:]  # latent 4
        late_swapped = decode_raw(vae, encode_mean(vae, swapped))[:, :, 13:]
    assert torch.allclose(held, image.expand_as(held), atol=1e-5)
    assert torch.allclose(plain[:, :, 9:], image.expand(-1, -1, 4, -1, -1), atol=1e-5)
    assert (plain[:, :, 1:5] - image).abs().max() > 0.01  # without the hold latent 1 meets empty history
    assert torch.allclose(late, late_swapped, atol=1e-5)


def test_inflated_decoder_upsampling_interpolates_a_little_late():
    """A latent ramp (latent k = k everywhere) leaves the two temporal upsamplers as a frame ramp with four
    equal steps per latent: frames 4k - 3 .. 4k show k - 0.6875 .. k + 0.0625, the latents' centres (4k - 1.5)
    delayed by 1.25 frames."""
    vae = build_vae("tiny")
    inflate_temporal_init(vae)
    first, second = [m for m in vae.decoder.modules() if isinstance(m, Resample) and m.time_conv is not None]
    cache = CausalCache()
    with torch.no_grad():
        ramp = torch.arange(6.0).view(1, 1, 6, 1, 1).expand(1, first.time_conv.in_channels, 6, 1, 1)
        halves = first._double_time(ramp, cache)[:, :1]  # [1, 1, 11, 1, 1]
        frames = second._double_time(halves.expand(1, second.time_conv.in_channels, -1, 1, 1), cache)[0, 0, :, 0, 0]
    k = torch.arange(3, 6).repeat_interleave(4).float()
    expected = k + torch.tensor([-0.6875, -0.4375, -0.1875, 0.0625]).repeat(3)
    torch.testing.assert_close(frames[9:], expected)  # latents 3..5: past the stream start's empty history


def test_clip_phase_trains_only_the_decoder_temporal_layers(clip_bank, smoke_config):
    """The encoder (so the DiT's latent space) and every per-frame layer stay as the image phase left them."""
    torch.manual_seed(6)
    vae = build_vae("tiny")
    inflate_temporal_init(vae)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    train_only_decoder_temporal(vae)
    trainable = {id(p) for p in decoder_temporal_parameters(vae)}
    trainable_names = {n for n, p in vae.named_parameters() if id(p) in trainable}
    assert trainable_names and all(n.startswith("decoder.") and ".time_conv." in n for n in trainable_names)
    assert {n for n, p in vae.named_parameters() if p.requires_grad} == trainable_names
    batch = sample_vae_batch(clip_bank, replace(smoke_config, vae_batch=2), torch.Generator().manual_seed(7))
    losses = _fit(vae, batch, steps=30, lr=3e-3)
    assert losses[-1] < 0.95 * losses[0], losses
    changed = {k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= trainable_names


def test_training_decode_is_the_inference_decode():
    """The differentiable one-pass decode starts with the same hold as ``WanVAE.decode`` (demo config)."""
    torch.manual_seed(9)
    vae = build_vae("demo")
    latents = torch.randn(1, 16, 4, 2, 2)  # the demo config's normalisation is the identity
    with torch.no_grad():
        torch.testing.assert_close(decode_raw(vae, latents).clamp(-1.0, 1.0), vae.decode(latents))
