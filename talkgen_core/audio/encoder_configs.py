"""wav2vec2 encoder configurations and their name registry.

"chinese-wav2vec2-base" is the encoder InfiniteTalk/MultiTalk were trained with (TencentGameMate,
Hugging Face base layout: group-norm conv front end without conv bias, post-LN transformer, no input
normalisation). "tiny" and "demo" keep the same front end (stride 320, receptive field 400 samples, so
the same 50 Hz feature rate) and shrink the widths; their layer count and width match the DiT configs
of the same names (tiny: audio_layers=4, audio_dim=32; demo: 4 x 64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from talkgen_core.registry import lookup_config


@dataclass(frozen=True)
class Wav2Vec2Config:
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    layer_norm_eps: float = 1e-5
    sample_rate: int = 16000
    # Zero-mean/unit-variance per clip before the conv stack (wav2vec2-large); off for the base model.
    normalize_input: bool = False

    def __post_init__(self) -> None:
        if not (len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride)):
            raise ValueError("conv_dim, conv_kernel and conv_stride must have one entry per conv layer")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.hidden_size % self.pos_conv_groups:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by pos_conv_groups {self.pos_conv_groups}")

    @property
    def frame_stride(self) -> int:
        """Input samples between consecutive conv feature frames (320 = 20 ms at 16 kHz)."""
        return math.prod(self.conv_stride)

    @property
    def receptive_field(self) -> int:
        """Input samples that one conv feature frame sees (400 = 25 ms at 16 kHz)."""
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    def num_conv_frames(self, num_samples: int) -> int:
        """Conv feature frames produced from ``num_samples`` input samples (0 if shorter than the field)."""
        if num_samples < self.receptive_field:
            return 0
        return (num_samples - self.receptive_field) // self.frame_stride + 1


CHINESE_WAV2VEC2_BASE = Wav2Vec2Config()

WAV2VEC2_CONFIGS: dict[str, Wav2Vec2Config] = {
    "chinese-wav2vec2-base": CHINESE_WAV2VEC2_BASE,
    "tiny": replace(
        CHINESE_WAV2VEC2_BASE,
        conv_dim=(32,) * 7,
        hidden_size=32,
        num_layers=4,
        num_heads=4,
        intermediate_size=64,
        pos_conv_kernel=16,
        pos_conv_groups=4,
    ),
    "demo": replace(
        CHINESE_WAV2VEC2_BASE,
        conv_dim=(64,) * 7,
        hidden_size=64,
        num_layers=4,
        num_heads=4,
        intermediate_size=128,
        pos_conv_kernel=32,
        pos_conv_groups=4,
    ),
}


def get_wav2vec2_config(name_or_config: str | Wav2Vec2Config) -> Wav2Vec2Config:
    """Look a config up by exact name; an unknown name raises listing the valid ones."""
    return lookup_config(WAV2VEC2_CONFIGS, name_or_config, "wav2vec2")
