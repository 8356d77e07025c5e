"""The DiT transformer block and its attention layers (official Wan2.1 / InfiniteTalk parameter names).

Block order: modulated self-attention (q/k RMSNorm, 3-D RoPE) -> text + CLIP-image cross-attention (outputs
summed) -> audio cross-attention after an affine LayerNorm, frame-local -> modulated GELU FFN.
The residual stream and all modulation math are float32; linear layers run in the compute dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from talkgen_core.models.attention import attention
from talkgen_core.models.audio_adapter import AudioCrossAttention, SpeakerRouting, speaker_affinity
from talkgen_core.models.configs import DiTConfig
from talkgen_core.models.layers import CastLinear, FP32LayerNorm, RMSNorm
from talkgen_core.models.rope import apply_rope


@dataclass
class BlockInputs:
    """Everything a block needs besides the residual stream; built once per forward by ``WanDiT``."""

    time_mod: torch.Tensor  # [B, 6, C] float32 (time_projection output)
    text: torch.Tensor  # [B, text_len, C] compute dtype
    image: torch.Tensor | None  # [B, N_img, C] compute dtype, None = text only
    rope: torch.Tensor  # [L, head_dim / 2] complex64 rotations (3-D RoPE)
    grid: tuple[int, int, int]  # latent (frames, height, width) in tokens
    audio: torch.Tensor | None  # [B, N_t, P * M, C_a] audio tokens, None = no audio attention
    routing: SpeakerRouting | None
    compute_dtype: torch.dtype
    backend: str = "sdpa"


class SelfAttention(nn.Module):
    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.q = CastLinear(config.dim, config.dim)
        self.k = CastLinear(config.dim, config.dim)
        self.v = CastLinear(config.dim, config.dim)
        self.o = CastLinear(config.dim, config.dim)
        self.norm_q = RMSNorm(config.dim, config.eps)
        self.norm_k = RMSNorm(config.dim, config.eps)

    def forward(
        self, x: torch.Tensor, inputs: BlockInputs, region_weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` [B, L, C] -> ([B, L, C], speaker affinity [B, L, 3] when ``region_weights`` is given)."""
        b, length, channels = x.shape
        shape = (b, length, self.num_heads, self.head_dim)
        q = apply_rope(self.norm_q(self.q(x)).view(shape), inputs.rope)
        k = apply_rope(self.norm_k(self.k(x)).view(shape), inputs.rope)
        v = self.v(x).view(shape)
        affinity = None
        if region_weights is not None:
            with torch.no_grad():
                affinity = speaker_affinity(q, k, inputs.grid[1] * inputs.grid[2], region_weights)
        out = attention(q, k, v, backend=inputs.backend)
        return self.o(out.reshape(b, length, channels)), affinity


class TextImageCrossAttention(nn.Module):
    """Shared query; text and CLIP-image attention outputs are summed before the output projection."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        for name in ("q", "k", "v", "o", "k_img", "v_img"):
            setattr(self, name, CastLinear(config.dim, config.dim))
        self.norm_q = RMSNorm(config.dim, config.eps)
        self.norm_k = RMSNorm(config.dim, config.eps)
        self.norm_k_img = RMSNorm(config.dim, config.eps)

    def forward(self, x: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None, backend: str) -> torch.Tensor:
        """``x`` [B, L, C], ``text`` [B, L_t, C], ``image`` [B, L_i, C] or None -> [B, L, C]."""
        b, length, channels = x.shape
        heads = (self.num_heads, self.head_dim)
        q = self.norm_q(self.q(x)).view(b, length, *heads)
        k = self.norm_k(self.k(text)).view(b, -1, *heads)
        out = attention(q, k, self.v(text).view(b, -1, *heads), backend=backend)
        if image is not None:
            k_img = self.norm_k_img(self.k_img(image)).view(b, -1, *heads)
            out = out + attention(q, k_img, self.v_img(image).view(b, -1, *heads), backend=backend)
        return self.o(out.reshape(b, length, channels))


class WanBlock(nn.Module):
    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.norm1 = FP32LayerNorm(config.dim, config.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(config)
        self.norm3 = FP32LayerNorm(config.dim, config.eps, elementwise_affine=True)
        self.cross_attn = TextImageCrossAttention(config)
        self.norm_x = FP32LayerNorm(config.dim, config.eps, elementwise_affine=True)
        self.audio_cross_attn = AudioCrossAttention(config)
        self.norm2 = FP32LayerNorm(config.dim, config.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(
            CastLinear(config.dim, config.ffn_dim), nn.GELU(approximate="tanh"), CastLinear(config.ffn_dim, config.dim)
        )
        self.modulation = nn.Parameter(torch.empty(1, 6, config.dim))

    def forward(self, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """``x`` [B, L, C] float32 residual stream -> same."""
        cd = inputs.compute_dtype
        mod = (self.modulation.float() + inputs.time_mod).unsqueeze(2)  # [B, 6, 1, C] float32
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.unbind(1)
        routing = inputs.routing
        region_weights = routing.region_weights if routing is not None and routing.needs_affinity else None
        y, affinity = self.self_attn((self.norm1(x) * (1 + scale1) + shift1).to(cd), inputs, region_weights)
        x = x + y.float() * gate1
        x = x + self.cross_attn(self.norm3(x).to(cd), inputs.text, inputs.image, inputs.backend).float()
        if inputs.audio is not None:
            assert routing is not None
            x = x + self.audio_cross_attn(
                self.norm_x(x).to(cd), inputs.audio, inputs.grid, routing, affinity, inputs.backend
            ).float()
        y = self.ffn((self.norm2(x) * (1 + scale2) + shift2).to(cd))
        return x + y.float() * gate2
