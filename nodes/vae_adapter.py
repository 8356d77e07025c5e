"""ComfyUI's native Wan VAE seen through the core's VideoAutoencoder protocol.

ComfyUI's ``VAE.encode`` takes IMAGE frames ``[T, H, W, 3]`` in [0, 1] and returns raw (un-normalised) Wan
latents ``[1, 16, t, h, w]``; ``decode`` returns ``[1, T, H, W, 3]``. The core speaks ``[1, 3, T, H, W]`` in
[-1, 1] and normalised latents; this adapter only reorders and calls the core's conversions.

For ComfyUI's Wan 2.1 VAE the adapter also speaks the core's streaming decode protocol
(``new_decode_state`` / ``decode_chunk``) on top of that VAE's own causal cache (its decoder's
``feat_cache`` list, as its one-pass ``decode`` uses it), so each chunk decodes only its new latents instead
of re-decoding the context latents, and the frames equal one decode of the whole latent video.
"""

from __future__ import annotations

import sys
from types import ModuleType

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


class ComfyDecodeState:
    """One decode stream of ComfyUI's Wan 2.1 decoder: its causal cache (one entry per cached layer)."""

    def __init__(self, cached_layers: int) -> None:
        self.feat_cache: list = [None] * cached_layers  # None, ComfyUI's "Rep" marker, or the last frames

    def to(self, device: torch.device | str) -> None:
        self.feat_cache = [c.to(device) if isinstance(c, torch.Tensor) else c for c in self.feat_cache]

    def keep_two_frames(self, before: list) -> None:
        """After a one-latent call: prepend the frame before to every entry now holding a single frame.

        ComfyUI's layers cache the last 2 frames of their input, which its own decode always feeds in pairs
        after the first latent; fed one latent at a time they would cache 1 and zero-pad the next causal
        window. Prepending the previous entry's last frame (the official Wan code's cache rule) keeps every
        window exact, so the stream equals ComfyUI's one-pass decode.
        """
        for i, (old, new) in enumerate(zip(before, self.feat_cache)):
            if isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor) and new.shape[2] < 2:
                self.feat_cache[i] = torch.cat([old[:, :, -1:].to(new.device), new], dim=2)


class ComfyStreamingVAEAdapter(ComfyVAEAdapter):
    """ComfyUI's Wan 2.1 VAE with the core's streaming decode protocol (see the module docstring)."""

    def __init__(self, vae, wan_vae_module: ModuleType) -> None:
        super().__init__(vae)
        self.cached_layers = wan_vae_module.count_cache_layers(vae.first_stage_model.decoder)

    def new_decode_state(self) -> ComfyDecodeState:
        return ComfyDecodeState(self.cached_layers)

    @torch.no_grad()
    def decode_chunk(self, latents: torch.Tensor, state: ComfyDecodeState) -> torch.Tensor:
        # latents: [1, z, t, h, w] normalised, the next ones of the stream -> [1, 3, n, H, W] in [-1, 1]
        # (n = 4t, or 4t - 3 for the stream's first chunk), as ComfyUI's decode runs them: conv2, then the
        # decoder one latent frame at a time through the shared cache
        from . import host

        raw = denormalize_latents(latents.float(), WAN21_LATENT_MEAN, WAN21_LATENT_STD)
        host.load_vae_for_decode(self.vae, tuple(raw.shape))
        model = self.vae.first_stage_model
        state.to(self.vae.device)
        x = model.conv2(raw.to(self.vae.device, self.vae.vae_dtype))
        pieces: list[torch.Tensor] = []
        for i in range(x.shape[2]):
            before = list(state.feat_cache)
            out = model.decoder(x[:, :, i : i + 1], feat_cache=state.feat_cache, feat_idx=[0])
            state.keep_two_frames(before)
            pieces.extend(out if isinstance(out, list) else [out])  # newer ComfyUI returns a list of frames
        return torch.cat(pieces, dim=2).float().clamp_(-1.0, 1.0).to(latents.device)


def _comfy_wan21_module(vae) -> ModuleType | None:
    """ComfyUI's ``comfy.ldm.wan.vae`` when ``vae`` holds its Wan 2.1 ``WanVAE``, else None."""
    model = getattr(vae, "first_stage_model", None)
    name = type(model).__module__
    module = sys.modules.get(name)
    if name != "comfy.ldm.wan.vae" or module is None or not hasattr(module, "count_cache_layers"):
        return None
    return module if hasattr(model, "decoder") and hasattr(model, "conv2") else None


def as_video_autoencoder(vae):
    """Our VAE as it is; ComfyUI's Wan 2.1 VAE behind the streaming adapter; any other VAE with
    encode/decode behind the plain adapter (each chunk then decodes as a new stream)."""
    if hasattr(vae, "decode_stream"):
        return vae
    wan = _comfy_wan21_module(vae)
    return ComfyVAEAdapter(vae) if wan is None else ComfyStreamingVAEAdapter(vae, wan)
