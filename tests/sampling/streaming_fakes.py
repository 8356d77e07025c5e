"""Small stand-ins with the DiT and VAE protocols, for fast and exactly predictable sampler tests.

FakeVAE: 8x average-pool in space and causal 4x mean in time (latent 0 = frame 0 alone), 4 latent channels
(RGB means + their average); decode is nearest-neighbour (latent 0 -> 1 frame, later latents -> 4 frames).
FakeDiT: the velocity of the straight path to a target that depends on the conditioning latent, the audio
windows of each latent frame and the text, ``v = (x - target) / s``; so one Euler step lands on the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Z = 4


class FakeVAE:
    z_dim = Z
    temporal_stride = 4
    spatial_stride = 8

    def __init__(self) -> None:
        self.encode_calls = 0
        self.decode_calls = 0

    def encode(self, frames: torch.Tensor) -> torch.Tensor:  # [B, 3, T, H, W] -> [B, 4, t, H/8, W/8]
        self.encode_calls += 1
        b, c, t, h, w = frames.shape
        assert (t - 1) % 4 == 0, t
        pooled = F.avg_pool3d(frames, kernel_size=(1, 8, 8))
        groups = [pooled[:, :, :1]]
        groups += [pooled[:, :, 1 + 4 * j : 5 + 4 * j].mean(2, keepdim=True) for j in range((t - 1) // 4)]
        rgb = torch.cat(groups, dim=2)
        return torch.cat([rgb, rgb.mean(1, keepdim=True)], dim=1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:  # [B, 4, t, h, w] -> [B, 3, 1 + 4(t-1), 8h, 8w]
        self.decode_calls += 1
        rgb = latents[:, :3]
        frames = torch.cat([rgb[:, :, :1], rgb[:, :, 1:].repeat_interleave(4, dim=2)], dim=2)
        return frames.repeat_interleave(8, dim=3).repeat_interleave(8, dim=4).clamp(-1, 1)


class FakeDiT(nn.Module):
    def __init__(self, text_dim: int = 8) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))
        self.text_dim = text_dim
        self.calls = 0
        self.batch_sizes: list[int] = []

    def forward(self, x, t, context, cond, clip_fea=None, audio=None, speaker_masks=None, audio_scale=1.0):
        self.calls += 1
        self.batch_sizes.append(x.shape[0])
        b, z, frames = x.shape[:3]
        assert cond.shape[1] == 4 + z and cond.shape[0] == b
        target = cond[:, 4:, :1].expand(-1, -1, frames, -1, -1) * self.gain
        # a sum is unchanged by zero padding of the tokens, like the real DiT (it pads to text_len)
        target = target + 0.05 * context.sum(dim=(1, 2)).view(b, 1, 1, 1, 1)
        if audio is not None:
            per_latent = audio[:, :, ::4, 2].mean(dim=(1, 3, 4))  # [B, T]: centre of each latent's first frame
            target = target + 0.1 * per_latent.view(b, 1, frames, 1, 1)
        s = (t.reshape(-1) / 1000.0).clamp_min(1e-3).view(-1, 1, 1, 1, 1)
        return (x - target) / s
