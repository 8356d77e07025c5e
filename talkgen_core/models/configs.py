"""DiT configurations: one frozen dataclass and a name registry.

The 14B entry reproduces Wan2.1-I2V-14B-480P plus the InfiniteTalk / MultiTalk audio adapter, so that a model
built from it has exactly the official state-dict keys and shapes. The small entries exist for tests, the demo
and benchmarks; variants are made with ``dataclasses.replace``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from talkgen_core.registry import lookup_config


@dataclass(frozen=True)
class DiTConfig:
    """Sizes of an audio-conditioned Wan2.1 image-to-video DiT.

    Channel layout of the input: ``in_dim = out_dim (noisy latent) + 4 (first-frame mask) + out_dim (cond)``.
    """

    name: str
    dim: int
    ffn_dim: int
    num_heads: int
    num_layers: int
    out_dim: int = 16  # latent channels (z)
    in_dim: int = 36  # 2 * z + 4
    patch_size: tuple[int, int, int] = (1, 2, 2)
    freq_dim: int = 256  # sinusoidal timestep features
    text_dim: int = 4096  # umT5-XXL hidden size
    text_len: int = 512  # text tokens after zero padding
    clip_dim: int = 1280  # CLIP ViT-H/14 penultimate width
    eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_max_positions: int = 1024
    # audio adapter (AudioProjModel + per-block audio cross-attention)
    audio_layers: int = 12  # wav2vec2 hidden states stacked per video frame
    audio_dim: int = 768  # wav2vec2 width
    audio_window: int = 5  # video frames per window (offsets -2..+2)
    vae_scale: int = 4  # video frames per later latent frame
    audio_intermediate_dim: int = 512
    audio_token_dim: int = 768  # width of the audio tokens fed to kv_linear
    audio_context_tokens: int = 32  # audio tokens per latent frame per speaker
    # label RoPE for two speakers: speaker 1 in [0, interval], speaker 2 in [range - interval, range]
    speaker_class_range: int = 24
    speaker_class_interval: int = 4

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"config {self.name!r}: dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"config {self.name!r}: head_dim {self.head_dim} must be even for RoPE")
        if self.in_dim != 2 * self.out_dim + 4:
            raise ValueError(
                f"config {self.name!r}: in_dim {self.in_dim} must be 2 * out_dim + 4 = {2 * self.out_dim + 4} "
                "(noisy latent | 4-channel mask | conditioning latent)"
            )
        if self.audio_window % 2 == 0:
            raise ValueError(
                f"config {self.name!r}: audio_window must be odd (a centred window), got {self.audio_window}"
            )

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def audio_window_vf(self) -> int:
        """Audio vectors per later latent frame: first frame's past half, centres, last frame's future half."""
        return self.audio_window + self.vae_scale - 1

    @property
    def patch_volume(self) -> int:
        return math.prod(self.patch_size)


WAN21_I2V_14B = DiTConfig(name="wan21-i2v-14b", dim=5120, ffn_dim=13824, num_heads=40, num_layers=40)

# Wan2.1 1.3B sizes (dim 1536, 12 heads, 30 layers) with the image and audio branches; used for benchmarks.
WAN21_1_3B = DiTConfig(name="wan21-1.3b", dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)

TINY = DiTConfig(
    name="tiny",
    dim=64,
    ffn_dim=128,
    num_heads=4,
    num_layers=2,
    text_dim=32,
    text_len=16,
    clip_dim=32,
    audio_layers=4,
    audio_dim=32,
    audio_intermediate_dim=32,
    audio_token_dim=32,
    audio_context_tokens=4,
)

DEMO = DiTConfig(
    name="demo",
    dim=128,
    ffn_dim=384,
    num_heads=4,
    num_layers=4,
    text_dim=64,
    text_len=16,
    clip_dim=64,
    audio_layers=4,
    audio_dim=64,
    audio_intermediate_dim=128,
    audio_token_dim=64,
    audio_context_tokens=8,
)

# The smallest model ComfyUI's own Wan loader takes (it reads 128-wide heads, umT5 and CLIP-H widths off the
# 14B layout), with the demo audio encoder's features: the host tests' native-route model.
COMFY_TINY = DiTConfig(
    name="comfy-tiny",
    dim=128,
    ffn_dim=256,
    num_heads=1,
    num_layers=2,
    audio_layers=4,
    audio_dim=64,
    audio_intermediate_dim=32,
    audio_token_dim=32,
    audio_context_tokens=4,
)

DIT_CONFIGS: dict[str, DiTConfig] = {c.name: c for c in (WAN21_I2V_14B, WAN21_1_3B, TINY, DEMO, COMFY_TINY)}


def get_dit_config(name_or_config: str | DiTConfig) -> DiTConfig:
    """Resolve a registry name (or pass a config through); unknown names list the valid ones."""
    return lookup_config(DIT_CONFIGS, name_or_config, "DiT")


def variant(base: str | DiTConfig, **changes: object) -> DiTConfig:
    """A copy of a registered config with some fields changed, e.g. ``variant("tiny", num_layers=1)``."""
    return replace(get_dit_config(base), **changes)  # type: ignore[arg-type]
