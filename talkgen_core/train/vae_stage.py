"""VAE pre-training: single-frame reconstruction, then the decoder's temporal layers, then folding the latent
statistics into the weights.

A random VAE's latents carry no usable structure, so the VAE learns to reconstruct the synthetic frames
first. It starts inflated (``inflate_temporal_init``): a per-frame image autoencoder whose temporal layers
pool and copy, so the first ``vae_image_share`` of the stage trains on single frames (batches of
``vae_image_batch`` random ``vae_crop`` pixel crops; a stream's first frame runs as 2-D convolutions) and what
it learns holds for every frame of a video. Left there, each latent decodes into four identical frames.

The rest of the stage, if any, is the clip phase: whole frames of clips of ``vae_frames`` (1 + 4k) frames,
the first frame alone making latent 0 and each further four frames one latent, train only the decoder's
temporal upsampling convolutions (``decoder_temporal_parameters``) to spread each latent over its four frames
using the latents before it. The encoder stays frozen, so the latent space the DiT learns is the one the
image phase made. (Training the whole VAE on clips, batch 1, made held-out reconstructions worse on a CPU.)

The loss is L1 on the decoded mean latent, weighted up on the mouth, plus a small L2 on the latents to keep
their scale bounded (the deterministic "L1 on mu" variant; no sampling).

The "tiny" config normalises latents with mean 0 / std 1, so after training the measured per-channel mean
and std are folded into the 1x1x1 convolutions around the latent (``fold_latent_normalisation``): the
shipped VAE then emits unit-scale latents with the registered config unchanged.
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
        weights.append((1.0 + config.vae_mouth_weight * mouth).unsqueeze(0))
    return VAEBatch(torch.stack(frames), torch.stack(weights))


@torch.no_grad()
def inflate_temporal_init(vae: WanVAE) -> None:
    """Start the VAE as a per-frame image autoencoder: no layer looks at other frames until it learns to.

    A single frame only ever meets zero padding in the past taps of the causal convolutions, so the image
    phase never trains those taps; left at their random init they add noise from earlier frames that grows
    through the layers, and a video decoded after the image phase washes out from the second latent on. Here
    every past tap starts at zero, the temporal downsampling starts as the mean of the two frames it merges
    and the temporal upsampling as a copy of the frame into both halves, so what the image phase learns holds
    for every frame of a clip from the start (the clip phase then learns the temporal taps).
    """
    for module in vae.modules():
        if isinstance(module, CausalConv3d) and module.kernel_size[0] > 1:
            module.weight[:, :, :-1] = 0.0
    for module in vae.modules():
        if isinstance(module, Resample) and module.time_conv is not None:
            conv = module.time_conv
            conv.weight.zero_()
            conv.bias.zero_()
            channels = torch.arange(conv.in_channels)
            if module.mode == "upsample3d":  # output halves [a | b], each a copy of the current frame
                conv.weight[channels, channels, -1] = 1.0
                conv.weight[channels + conv.in_channels, channels, -1] = 1.0
            else:  # mean of the two newest frames of each stride-2 window
                conv.weight[channels, channels, -1] = 0.5
                conv.weight[channels, channels, -2] = 0.5


def decoder_temporal_parameters(vae: WanVAE) -> list[torch.nn.Parameter]:
    """The weights of the decoder's temporal upsampling convolutions: all that the clip phase trains."""
    return [
        p
        for module in vae.decoder.modules()
        if isinstance(module, Resample) and module.time_conv is not None
        for p in module.time_conv.parameters()
    ]


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
    """Differentiable one-pass decoder: raw latents [B, z, t, h, w] -> frames [B, 3, 1 + 4 (t - 1), H, W]."""
    return vae.decoder(vae.conv2(latents), CausalCache())


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
