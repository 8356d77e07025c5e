"""Shared inputs for the DiT tests: seeded tiny-model tensors following the forward contract."""

from __future__ import annotations

import torch

from talkgen_core.models.configs import DiTConfig


def dit_inputs(
    config: DiTConfig, batch: int = 1, frames: int = 3, size: int = 8, speakers: int = 1, seed: int = 0
) -> dict[str, torch.Tensor]:
    """x, t, context, cond, clip_fea, audio for a ``frames``-latent chunk at ``size`` x ``size`` latents."""
    g = torch.Generator().manual_seed(seed)
    z = config.out_dim
    video_frames = config.vae_scale * (frames - 1) + 1
    return {
        "x": torch.randn(batch, z, frames, size, size, generator=g),
        "t": torch.linspace(900.0, 300.0, batch),
        "context": torch.randn(batch, 5, config.text_dim, generator=g),
        "cond": torch.randn(batch, 4 + z, frames, size, size, generator=g),
        "clip_fea": torch.randn(batch, 3, config.clip_dim, generator=g),
        "audio": torch.randn(
            batch, speakers, video_frames, config.audio_window, config.audio_layers, config.audio_dim, generator=g
        ),
    }


def capture_audio_residual(model: torch.nn.Module, block: int = 0) -> tuple[list[torch.Tensor], object]:
    """Record the output of one block's audio cross-attention at every forward; returns (records, hook)."""
    records: list[torch.Tensor] = []
    hook = model.blocks[block].audio_cross_attn.register_forward_hook(
        lambda module, args, output: records.append(output.detach().clone())
    )
    return records, hook
