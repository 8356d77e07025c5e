"""VAE pre-training: single-frame reconstruction, then the decoder's temporal layers, then folding the latent
statistics into the weights.

A random VAE's latents carry no usable structure, so the VAE learns to reconstruct the synthetic frames
first. It starts inflated (``inflate_temporal_init``): a per-frame image autoencoder whose encoder averages
each latent's four frames and whose decoder interpolates between consecutive latents, so the first
``vae_image_share`` of the stage trains on single frames (batches of ``vae_image_batch`` random ``vae_crop``
pixel crops; a stream's first frame runs as 2-D convolutions) and what it learns holds for every frame of a
video. Single frames never reach the temporal resampling, which stays as initialised.

The rest of the stage, if any, is the clip phase: whole frames of clips of ``vae_frames`` (1 + 4k) frames,
the first frame alone making latent 0 and each further four frames one latent, train only the decoder's
temporal upsampling convolutions (``decoder_temporal_parameters``). The encoder stays frozen, so the latent
space the DiT learns is the one the image phase made. (Training the whole VAE on clips, batch 1, made held-out
reconstructions worse on a CPU.)

The loss is L1 on the decoded mean latent, weighted up on the mouth (and the eyes, ``vae_eye_weight``), plus a small L2 on the latents to keep
their scale bounded (the deterministic "L1 on mu" variant; no sampling).

The "demo" config (the "tiny" structure) normalises latents with mean 0 / std 1, so after training the
measured per-channel mean and std are folded into the 1x1x1 convolutions around the latent
(``fold_latent_normalisation``): the shipped VAE then emits unit-scale latents with the registered config
unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.models.vae import WanVAE
from talkgen_core.models.vae_layers import CausalCache, CausalConv3d, Resample
from talkgen_core.train.config import TrainConfig
from talkgen_core.train.data import ClipBank, to_model_pixels


@dataclass(frozen=True)
class VAEBatch:
    frames: Tensor  # [B, 3, T, c, c] in [-1, 1]
    weights: Tensor  # [B, 1, T, c, c] per-pixel L1 weights


def sample_vae_batch(
    bank: ClipBank, config: TrainConfig, generator: torch.Generator, single_frames: bool = False
) -> VAEBatch:
    """Random clips and start frames: single frames as ``vae_crop`` square crops, or ``vae_frames``-frame clips
    at full size (the decoder's temporal layers see whole frames, as when the sampler decodes)."""
    b, t = (config.vae_image_batch, 1) if single_frames else (config.vae_batch, config.vae_frames)
    c = config.vae_crop if single_frames else config.size
    h, w = bank.frames.shape[-2:]
    clips = torch.randint(bank.num_clips, (b,), generator=generator)
    starts = torch.randint(bank.num_frames - t + 1, (b,), generator=generator)
    tops = torch.randint(h - c + 1, (b,), generator=generator)
    lefts = torch.randint(w - c + 1, (b,), generator=generator)
    frames, weights = [], []
    for i in range(b):
        n, s, y, x = int(clips[i]), int(starts[i]), int(tops[i]), int(lefts[i])
        crop = bank.frames[n, s : s + t, :, y : y + c, x : x + c]  # [T, 3, c, c]
        frames.append(to_model_pixels(crop).permute(1, 0, 2, 3))
        mouth = bank.mouth[n, s : s + t, y : y + c, x : x + c].float() / 255.0  # [T, c, c]
        weight = 1.0 + config.vae_mouth_weight * mouth
        if bank.eye is not None and config.vae_eye_weight:
            weight = weight + config.vae_eye_weight * bank.eye[n, s : s + t, y : y + c, x : x + c].float() / 255.0
        weights.append(weight.unsqueeze(0))
    return VAEBatch(torch.stack(frames), torch.stack(weights))


# Decoder temporal upsamplers, in order (latent rate, then twice that): the weight of the newest input frame in
# the first and the second output half; the frame before it gets the rest (see inflate_temporal_init).
UPSAMPLE_CURRENT_WEIGHTS = ((0.5625, 1.0625), (0.5, 1.0))


@torch.no_grad()
def inflate_temporal_init(vae: WanVAE) -> None:
    """Start the VAE as a per-frame image autoencoder whose decoder interpolates between latents.

    A single frame only ever meets zero padding in the past taps of the causal convolutions, so the image
    phase never trains those taps; left at their random init they add noise from earlier frames that grows
    through the layers, and a video decoded after the image phase washes out from the second latent on. Here
    every past tap starts at zero and the temporal downsampling as the mean of the two frames it merges, so
    what the image phase learns holds for every frame of a clip, and latent k encodes the mean of its frames
    4k - 3 .. 4k (centred on 4k - 1.5).

    The decoder's temporal upsampling (which the image phase never runs: a stream's first frame passes it)
    starts as linear interpolation: frame 4k - 3 + j decodes from z_(k-1) + w_j (z_k - z_(k-1)) with w =
    (0.28, 0.5625, 0.8125, 1.0625) (the first also -0.03 z_(k-2)), the straight path through the latents'
    centres 1.25 frames late. The decoder is causal: on time, the last frame of a latent would extrapolate to
    1.375; interpolating only (w up to 1) is 1.5 frames late. The first upsampler makes the halves
    a = 0.5625 z_k + 0.4375 z_(k-1) and b = 1.0625 z_k - 0.0625 z_(k-1), the second each half's frames as (the
    mean of it and the half before, itself). Copying each latent into all four frames instead moves in steps
    of four frames, and every chunk seam is a jump between still frames. Measured on the shipped weights
    (held-out 120 s, latent context), 1 / 1.25 / 1.5 frames late: seam ratio 1.38 / 1.32 / 1.26, lip-sync
    correlation 0.685 / 0.676 / 0.673, best lag 0 / 0 / +1 frames; copying: seam ratio about 9,000 (the median
    step inside chunks is 0), best lag -1.
    """
    for module in vae.modules():
        if isinstance(module, CausalConv3d) and module.kernel_size[0] > 1:
            module.weight[:, :, :-1] = 0.0
    upsamplers = _time_convs(vae.decoder)
    if len(upsamplers) != len(UPSAMPLE_CURRENT_WEIGHTS):
        raise ValueError(f"expected {len(UPSAMPLE_CURRENT_WEIGHTS)} temporal upsamplers, found {len(upsamplers)}")
    for conv, weights in zip(upsamplers, UPSAMPLE_CURRENT_WEIGHTS):
        _mix_newest_two(conv, weights)
    for conv in _time_convs(vae.encoder):
        _mix_newest_two(conv, (0.5,))  # downsampling: the mean of the two newest frames of each window


def _time_convs(part: torch.nn.Module) -> list[CausalConv3d]:
    return [m.time_conv for m in part.modules() if isinstance(m, Resample) and m.time_conv is not None]


def _mix_newest_two(conv: CausalConv3d, currents: tuple[float, ...]) -> None:
    """Output half i (channels ``i * C .. (i + 1) * C``) = currents[i] x newest frame + (1 - currents[i]) x the
    frame before, channel by channel; every other weight and the bias zero."""
    conv.weight.zero_()
    conv.bias.zero_()
    channels = torch.arange(conv.in_channels)
    for half, current in enumerate(currents):
        conv.weight[channels + half * conv.in_channels, channels, -1] = current
        conv.weight[channels + half * conv.in_channels, channels, -2] = 1.0 - current


def decoder_temporal_parameters(vae: WanVAE) -> list[torch.nn.Parameter]:
    """The weights of the decoder's temporal upsampling convolutions: all that the clip phase trains."""
    return [p for conv in _time_convs(vae.decoder) for p in conv.parameters()]


def train_only_decoder_temporal(vae: WanVAE) -> None:
    """Freeze every VAE weight but the decoder's temporal upsampling (the clip phase)."""
    vae.requires_grad_(False)
    for p in decoder_temporal_parameters(vae):
        p.requires_grad_(True)


def encode_mean(vae: WanVAE, frames: Tensor) -> Tensor:
    """Differentiable one-pass encoder: frames [B, 3, T, H, W] -> raw (unnormalised) mean latents [B, z, t, h, w].

    One pass over the whole clip with a fresh causal cache equals the streaming ``encode`` (tested), and
    unlike it keeps the graph for training.
    """
    stats = vae.conv1(vae.encoder(frames, CausalCache()))
    return stats[:, : vae.z_dim]


def decode_raw(vae: WanVAE, latents: Tensor) -> Tensor:
    """Differentiable one-pass decoder: raw latents [B, z, t, h, w] -> frames [B, 3, 1 + 4 (t - 1), H, W].

    Like ``WanVAE.decode`` it starts with the config's ``stream_start_hold`` (latent 0 repeated, those frames
    dropped), so the clip phase learns the decoder that inference runs.
    """
    hold = vae.config.stream_start_hold
    if hold == 0 or latents.shape[2] == 1:  # single frames (the image phase) have no latent 1 to prepare
        return vae.decoder(vae.conv2(latents), CausalCache())
    held = torch.cat([latents[:, :, :1].expand(-1, -1, hold, -1, -1), latents], dim=2)
    frames = vae.decoder(vae.conv2(held), CausalCache())
    return torch.cat([frames[:, :, :1], frames[:, :, 1 + hold * vae.temporal_stride :]], dim=2)


def vae_loss(vae: WanVAE, batch: VAEBatch, latent_l2: float) -> tuple[Tensor, Tensor]:
    """(total loss, weighted L1) for one batch."""
    mu = encode_mean(vae, batch.frames)
    recon = decode_raw(vae, mu)
    l1 = ((recon - batch.frames).abs() * batch.weights).sum() / (batch.weights.sum() * 3.0)
    return l1 + latent_l2 * mu.pow(2).mean(), l1


@torch.no_grad()
def latent_statistics(vae: WanVAE, bank: ClipBank, max_clips: int = 16) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std [z] of the raw mean latents over (up to) ``max_clips`` whole clips."""
    latents = []
    for n in range(min(max_clips, bank.num_clips)):
        frames = to_model_pixels(bank.frames[n]).permute(1, 0, 2, 3).unsqueeze(0)  # [1, 3, F, H, W]
        latents.append(encode_mean(vae, frames).transpose(0, 1).flatten(1))  # [z, t * h * w]
    flat = torch.cat(latents, dim=1)
    return flat.mean(dim=1), flat.std(dim=1).clamp_min(1e-4)


@torch.no_grad()
def fold_latent_normalisation(vae: WanVAE, mean: Tensor, std: Tensor) -> None:
    """Rewrite ``conv1`` and ``conv2`` so that raw latents become ``(mu - mean) / std``, decoding unchanged.

    conv1 (2z -> mean | log-variance, 1x1x1): mean rows scaled by 1/std and shifted; log-variance shifted by
    -2 log std. conv2 (z -> z, 1x1x1) takes the normalised latent, so it absorbs ``z = std * z' + mean``.
    """
    z = vae.z_dim
    w1, b1 = vae.conv1.weight, vae.conv1.bias
    w1[:z] /= std.view(z, 1, 1, 1, 1)
    b1[:z] = (b1[:z] - mean) / std
    b1[z:] -= 2.0 * torch.log(std)
    w2, b2 = vae.conv2.weight, vae.conv2.bias
    b2 += (w2[:, :, 0, 0, 0] @ mean)
    w2 *= std.view(1, z, 1, 1, 1)
