"""ComfyUI's native Wan VAE seen through the core's VideoAutoencoder protocol.

ComfyUI's ``VAE.encode`` takes IMAGE frames ``[T, H, W, 3]`` in [0, 1] and returns raw (un-normalised) Wan
latents ``[1, 16, t, h, w]``; ``decode`` returns ``[1, T, H, W, 3]``. The core speaks ``[1, 3, T, H, W]`` in
[-1, 1] and normalised latents; this adapter only reorders and calls the core's conversions.
"""

from __future__ import annotations

import torch

from talkgen_core.models.vae import WAN21_LATENT_MEAN, WAN21_LATENT_STD, denormalize_latents, normalize_latents
from talkgen_core.video.frames import frames_to_images, images_to_frames


class ComfyVAEAdapter:
    z_dim = len(WAN21_LATENT_MEAN)
    temporal_stride = 4
    spatial_stride = 8

    def __init__(self, vae) -> None:
        self.vae = vae

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: [1, 3, T, H, W] in [-1, 1] -> [1, z, t, h, w] normalised
        if frames.shape[0] != 1:
            raise ValueError(f"ComfyUI's VAE encodes one video at a time, got a batch of {frames.shape[0]}")
        raw = self.vae.encode(frames_to_images(frames[0].transpose(0, 1)))
        return normalize_latents(raw.float(), WAN21_LATENT_MEAN, WAN21_LATENT_STD)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        # latents: [1, z, t, h, w] normalised -> [1, 3, T, H, W] in [-1, 1]
        images = self.vae.decode(denormalize_latents(latents.float(), WAN21_LATENT_MEAN, WAN21_LATENT_STD))
        images = images.reshape(-1, *images.shape[-3:])  # [T, H, W, 3]
        return images_to_frames(images).transpose(0, 1)[None].to(latents.device)


def as_video_autoencoder(vae):
    """Our VAE as it is; ComfyUI's VAE (anything else with encode/decode) behind the adapter."""
    return vae if hasattr(vae, "decode_stream") else ComfyVAEAdapter(vae)
