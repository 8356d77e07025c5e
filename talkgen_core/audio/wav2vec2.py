"""wav2vec2 (base architecture) with the official InfiniteTalk frame-rate alignment.

Module and parameter names follow the Hugging Face layout without the ``wav2vec2.`` prefix, so a
state dict of the public ``chinese-wav2vec2-base`` loads key for key (see ``wav2vec2_weights``).

Forward, as in MeiGen's pipeline:
    waveform [B, S] -> conv feature extractor [B, C, N] (50 Hz)
    -> linear interpolation (align_corners=True) to the video frame count T      <- before the transformer
    -> feature projection (LayerNorm, Linear) [B, T, D]
    -> positional conv embedding + LayerNorm -> 12 post-LN transformer layers
    -> outputs of layers 1..L stacked [B, T, L, D]
ComfyUI's native encoder interpolates the transformer outputs instead; the two differ numerically.

The conv stack can run on slices of the waveform with clip-wide GroupNorm statistics supplied from
outside (``ConvFeatureExtractor.forward(..., norm_stats=...)``); ``long.py`` uses that to encode long
audio in bounded memory with conv features identical to one pass over the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .encoder_configs import Wav2Vec2Config, get_wav2vec2_config


@dataclass(frozen=True)
class GroupNormStats:
    """Per-channel statistics of the first conv layer's output over a whole clip."""

    mean: torch.Tensor  # [C0] float32
    var: torch.Tensor  # [C0] float32, biased (as GroupNorm uses)


class ConvLayer(nn.Module):
    """Conv1d, optional GroupNorm with one group per channel (first layer only), exact GELU."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, bias: bool, group_norm: bool):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride=stride, bias=bias)
        self.layer_norm = nn.GroupNorm(out_dim, out_dim, affine=True) if group_norm else None

    def forward(self, x: torch.Tensor, norm_stats: GroupNormStats | None = None) -> torch.Tensor:
        x = self.conv(x)  # [B, C, N]
        if self.layer_norm is not None:
            if norm_stats is None:
                x = self.layer_norm(x)
            else:
                scale = torch.rsqrt(norm_stats.var.to(x) + self.layer_norm.eps) * self.layer_norm.weight
                x = (x - norm_stats.mean.to(x)[:, None]) * scale[:, None] + self.layer_norm.bias[:, None]
        return F.gelu(x)


class ConvFeatureExtractor(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        dims = (1,) + config.conv_dim
        self.conv_layers = nn.ModuleList(
            ConvLayer(dims[i], dims[i + 1], k, s, config.conv_bias, group_norm=i == 0)
            for i, (k, s) in enumerate(zip(config.conv_kernel, config.conv_stride))
        )

    def forward(self, waveform: torch.Tensor, norm_stats: GroupNormStats | None = None) -> torch.Tensor:
        """[B, S] -> [B, C, N]; ``norm_stats`` replaces the slice's own first-layer statistics."""
        x = waveform[:, None]
        for i, layer in enumerate(self.conv_layers):
            x = layer(x, norm_stats if i == 0 else None)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.conv_dim[-1], eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim[-1], config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(features))  # [B, T, C] -> [B, T, D]


class PositionalConvEmbedding(nn.Module):
    """Grouped conv over time with weight norm on the kernel axis (dim=2), trimmed to 'same' length."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        conv = nn.Conv1d(
            config.hidden_size,
            config.hidden_size,
            config.pos_conv_kernel,
            padding=config.pos_conv_kernel // 2,
            groups=config.pos_conv_groups,
        )
        # Keys: conv.parametrizations.weight.original0 [1, 1, K] (g) and .original1 [D, D/G, K] (v).
        self.conv = weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if config.pos_conv_kernel % 2 == 0 else 0

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.conv(hidden.transpose(1, 2))  # [B, D, T + trim]
        if self.trim:
            x = x[..., : -self.trim]
        return F.gelu(x).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        d = config.hidden_size
        self.num_heads = config.num_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (proj(x).view(b, t, self.num_heads, -1).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, T, d_head], scale d_head ** -0.5
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.intermediate_dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.output_dense = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Post-LN: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.attention = SelfAttention(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> outputs of every layer [B, T, L, D] (the pre-layer input, HF index 0, is dropped)."""
        x = self.layer_norm(hidden + self.pos_conv_embed(hidden))
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return torch.stack(outputs, dim=2)


class Wav2Vec2Model(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.config = config
        self.feature_extractor = ConvFeatureExtractor(config)
        self.feature_projection = FeatureProjection(config)
        self.encoder = Encoder(config)
        # Used only for SpecAugment masking in training; kept so HF state dicts load key for key.
        self.masked_spec_embed = nn.Parameter(torch.zeros(config.hidden_size))

    def prepare_input(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, S] float -> [B, S] in the model's dtype; per-clip normalisation when the config asks for it."""
        x = waveform.to(self.masked_spec_embed.dtype)
        if self.config.normalize_input:
            x = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-7)
        return x

    def extract_features(self, waveform: torch.Tensor, norm_stats: GroupNormStats | None = None) -> torch.Tensor:
        """[B, S] (already prepared) -> conv features [B, C, N] at ``sample_rate / frame_stride`` Hz."""
        return self.feature_extractor(waveform, norm_stats)

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        """Frame-aligned conv features [B, T, C] -> hidden states of layers 1..L [B, T, L, D]."""
        return self.encoder(self.feature_projection(features))

    def forward(self, waveform: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """One pass over whole clips: [B, S] -> [B, T, L, D], T = ``num_frames`` (else the 50 Hz count).

        Conv features are linearly interpolated (align_corners=True) to ``num_frames`` before the
        projection and the transformer, as in the official pipeline.
        """
        features = self.extract_features(self.prepare_input(waveform))  # [B, C, N]
        if num_frames is not None and num_frames != features.shape[-1]:
            features = F.interpolate(features, size=num_frames, mode="linear", align_corners=True)
        return self.transform(features.transpose(1, 2))


def build_wav2vec2(
    name_or_config: str | Wav2Vec2Config,
    device: str | torch.device = "cpu",
    *,
    weights: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Wav2Vec2Model:
    """Build the encoder by name ("chinese-wav2vec2-base", "tiny", "demo") or config, in eval mode.

    ``weights``: a Hugging Face (``pytorch_model.bin``/``model.safetensors``, with or without the
    ``wav2vec2.`` prefix, ``weight_g``/``weight_v`` or parametrization names) or ComfyUI fp16 repack
    file; weights are cast to ``dtype`` (fp32 by default, as the official pipeline runs it).
    Without ``weights`` the parameters are randomly initialised (seed with ``torch.manual_seed``).
    """
    model = Wav2Vec2Model(get_wav2vec2_config(name_or_config))
    if weights is not None:
        from .wav2vec2_weights import load_wav2vec2_weights

        load_wav2vec2_weights(model, weights)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)
