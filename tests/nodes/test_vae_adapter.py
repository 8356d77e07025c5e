"""ComfyUI's native Wan VAE behind the core's VideoAutoencoder protocol, with a stand-in that has the host's
layouts: encode(IMAGE [T, H, W, 3] in [0, 1]) -> raw latents [1, 16, t, h, w]; decode -> [1, T, H, W, 3]."""

from __future__ import annotations

import torch
from helpers.pack_import import import_pack_like_comfyui

from talkgen_core.models.vae import (
    WAN21_LATENT_MEAN,
    WAN21_LATENT_STD,
    build_vae,
    denormalize_latents,
    normalize_latents,
)


class HostLikeVAE:
    """Wraps our tiny VAE the way ComfyUI's VAE object presents the Wan VAE (raw latents, IMAGE layout)."""

    def __init__(self) -> None:
        self.inner = build_vae("tiny")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        frames = images.permute(3, 0, 1, 2)[None] * 2 - 1  # [1, 3, T, H, W]
        return denormalize_latents(self.inner.encode(frames), WAN21_LATENT_MEAN, WAN21_LATENT_STD)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        frames = self.inner.decode(normalize_latents(latents, WAN21_LATENT_MEAN, WAN21_LATENT_STD))
        return ((frames[0].permute(1, 2, 3, 0) + 1) / 2)[None]  # [1, T, H, W, 3]


def test_native_vae_adapter_matches_the_core_vae(tmp_path):
    pack = import_pack_like_comfyui(tmp_path)
    host_vae = HostLikeVAE()
    adapter = pack.nodes.vae_adapter.as_video_autoencoder(host_vae)
    assert adapter is not host_vae and adapter.z_dim == 16
    frames = torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latents = adapter.encode(frames)
    assert torch.allclose(latents, host_vae.inner.encode(frames), atol=1e-5)
    decoded = adapter.decode(latents)
    assert decoded.shape == (1, 3, 5, 16, 16)
    assert torch.allclose(decoded, host_vae.inner.decode(latents), atol=1e-5)
    assert pack.nodes.vae_adapter.as_video_autoencoder(host_vae.inner) is host_vae.inner
