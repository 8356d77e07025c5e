"""The DiT transformer block and its attention layers (official Wan2.1 / InfiniteTalk parameter names).

Block order: modulated self-attention (q/k RMSNorm, 3-D RoPE) -> text + CLIP-image cross-attention (outputs
summed) -> audio cross-attention after an affine LayerNorm, frame-local -> modulated GELU FFN.
The residual stream and all modulation math are float32; linear layers run in the compute dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talkgen_core.models.attention import attention
from talkgen_core.models.audio_adapter import AudioCrossAttention, SpeakerRouting, speaker_affinity
from talkgen_core.models.configs import DiTConfig
from talkgen_core.models.layers import CoreOperations
from talkgen_core.models.rope import apply_rope


def modulated_norm(norm: nn.Module, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``norm(x) * (1 + scale) + shift`` in float32, for a non-affine LayerNorm ``norm``.

    ``x`` [B, L, C] float32; ``shift``, ``scale`` [B or 1, 1, C] float32 -> [B, L, C] float32. With one
    modulation vector for the whole batch it is a single layer-norm pass with ``(1 + scale, shift)`` as its
    affine parameters (no [B, L, C] temporaries); otherwise one norm pass and one fused multiply-add.
    """
    if shift.shape[0] == 1 and isinstance(norm, nn.LayerNorm) and norm.weight is None:
        channels = x.shape[-1]
        return F.layer_norm(x.float(), (channels,), (1 + scale).reshape(channels), shift.reshape(channels), norm.eps)
    return torch.addcmul(shift, norm(x).float(), 1 + scale)


def add_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
    """``x + y * gate`` (``x + y`` without a gate) in ``x``'s float32, with no float copy of ``y``.

    In place when autograd is off: call it only on a residual tensor the block made itself (never on its input).
    """
    if torch.is_grad_enabled():
        return x + y if gate is None else torch.addcmul(x, y, gate)
    return x.add_(y) if gate is None else x.addcmul_(y, gate)


@dataclass
class BlockInputs:
    """Everything a block needs besides the residual stream; built once per forward by ``WanDiT``."""

    time_mod: torch.Tensor  # [B or 1, 6, C] float32 (time_projection output; 1 = one timestep for the batch)
    text: torch.Tensor  # [B, text_len, C] compute dtype
    image: torch.Tensor | None  # [B, N_img, C] compute dtype, None = text only
    rope: torch.Tensor  # [L, head_dim / 2] complex64 rotations (3-D RoPE)
    grid: tuple[int, int, int]  # latent (frames, height, width) in tokens
    audio: torch.Tensor | None  # [B, N_t, P * M, C_a] audio tokens, None = no audio attention
    routing: SpeakerRouting | None
    compute_dtype: torch.dtype
    backend: str = "sdpa"
    # replaces ``attention`` in self-attention only (sequence parallel's all-to-all, models/sequence_parallel.py)
    self_attention: Callable[..., torch.Tensor] | None = None


class SelfAttention(nn.Module):
    def __init__(self, config: DiTConfig, operations: type = CoreOperations) -> None:
        super().__init__()
        ops = operations
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.q = ops.Linear(config.dim, config.dim)
        self.k = ops.Linear(config.dim, config.dim)
        self.v = ops.Linear(config.dim, config.dim)
        self.o = ops.Linear(config.dim, config.dim)
        self.norm_q = ops.RMSNorm(config.dim, eps=config.eps)
        self.norm_k = ops.RMSNorm(config.dim, eps=config.eps)

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
        out = (inputs.self_attention or attention)(q, k, v, backend=inputs.backend)
        return self.o(out.reshape(b, length, channels)), affinity


class TextImageCrossAttention(nn.Module):
    """Shared query; text and CLIP-image attention outputs are summed before the output projection."""

    def __init__(self, config: DiTConfig, operations: type = CoreOperations) -> None:
        super().__init__()
        ops = operations
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        for name in ("q", "k", "v", "o", "k_img", "v_img"):
            setattr(self, name, ops.Linear(config.dim, config.dim))
        self.norm_q = ops.RMSNorm(config.dim, eps=config.eps)
        self.norm_k = ops.RMSNorm(config.dim, eps=config.eps)
        self.norm_k_img = ops.RMSNorm(config.dim, eps=config.eps)

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
    def __init__(self, config: DiTConfig, operations: type = CoreOperations) -> None:
        super().__init__()
        ops = operations
        self.norm1 = ops.LayerNorm(config.dim, eps=config.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(config, ops)
        self.norm3 = ops.LayerNorm(config.dim, eps=config.eps, elementwise_affine=True)
        self.cross_attn = TextImageCrossAttention(config, ops)
        self.norm_x = ops.LayerNorm(config.dim, eps=config.eps, elementwise_affine=True)
        self.audio_cross_attn = AudioCrossAttention(config, ops)
        self.norm2 = ops.LayerNorm(config.dim, eps=config.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(
            ops.Linear(config.dim, config.ffn_dim), nn.GELU(approximate="tanh"), ops.Linear(config.ffn_dim, config.dim)
        )
        self.modulation = nn.Parameter(torch.empty(1, 6, config.dim))

    def forward(self, x: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """``x`` [B, L, C] float32 residual stream -> same."""
        cd = inputs.compute_dtype
        # .to(device): a host's partial loading may leave this bare parameter on its offload device
        mod = (self.modulation.to(inputs.time_mod.device, torch.float32) + inputs.time_mod).unsqueeze(2)  # [B, 6, 1, C]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.unbind(1)
        routing = inputs.routing
        region_weights = routing.region_weights if routing is not None and routing.needs_affinity else None
        y, affinity = self.self_attn(modulated_norm(self.norm1, x, shift1, scale1).to(cd), inputs, region_weights)
        x = torch.addcmul(x, y, gate1)  # a new tensor: the block never writes its input
        x = add_residual(x, self.cross_attn(self.norm3(x).to(cd), inputs.text, inputs.image, inputs.backend))
        if inputs.audio is not None:
            assert routing is not None
            audio = self.audio_cross_attn(
                self.norm_x(x).to(cd), inputs.audio, inputs.grid, routing, affinity, inputs.backend
            )
            x = add_residual(x, audio)
        y = self.ffn(modulated_norm(self.norm2, x, shift2, scale2).to(cd))
        return add_residual(x, y, gate2)
