"""Everything the DiT stages need, encoded once with the frozen VAE and audio encoder.

Per clip (F frames, latent size h x w, z channels, chunk of C frames = 1 + 4 (T - 1)):
- ``stream``: the whole clip encoded as one causal stream, ``[z, 1 + (F - 1) / 4, h, w]``. A slice starting
  at latent ``j >= 1`` is a chunk at frame ``4 j`` whose first latents are the clip's own past, exactly
  what the streaming sampler pins as context in latent mode (the previous chunk's last latents).
- ``start_streams``: fresh streams of C frames from a few reference positions, ``[R, z, T, h, w]``: chunk-0
  targets, whose latent 0 is the reference frame alone.
- ``conditions``: ``encode(reference frame, then grey frames)`` over C frames for each reference position
  and, last, the neutral portrait: ``[R + 1, z, T, h, w]`` (the sampler's conditioning latent).
- ``audio_features``: the fixed wav2vec2's hidden states per video frame, per speaker, ``[P, F, L, D]``.
- ``face`` / ``mouth``: pixel coverage averaged over each latent cell, per video frame, ``[F, h, w]``.
- ``speaker_masks``: two-person clips only, the part of the latent grid each speaker owns, ``[P, h, w]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from talkgen_core.audio.encode import encode_speech
from talkgen_core.models.vae import WanVAE
from talkgen_core.train.config import TrainConfig
from talkgen_core.train.data import ClipBank, to_model_pixels
from talkgen_core.train.vae_stage import encode_mean


@dataclass(frozen=True)
class LatentBank:
    stream: Tensor  # [N, z, L, h, w]
    start_frames: tuple[int, ...]  # R reference positions (frame indices)
    start_streams: Tensor  # [N, R, z, T, h, w]
    conditions: Tensor  # [N, R + 1, z, T, h, w]; index R is the neutral portrait
    audio_features: Tensor  # [N, P, F, L, D]
    face: Tensor  # [N, F, h, w]
    mouth: Tensor  # [N, F, h, w]
    speaker_masks: Tensor | None = None  # [N, P, h, w] (P > 1)

    @property
    def num_clips(self) -> int:
        return int(self.stream.shape[0])


@torch.no_grad()
def encode_video(vae: WanVAE, frames: Tensor) -> Tensor:
    """Frames [B, 3, T, H, W] in [-1, 1] -> normalised latents [B, z, 1 + (T - 1) / 4, H / 8, W / 8]."""
    return vae.normalize_latents(encode_mean(vae, frames))


def reference_positions(config: TrainConfig) -> tuple[int, ...]:
    """Frames whose fresh stream and condition are cached: spread evenly over the possible chunk starts."""
    last = config.clip_frames - config.chunk_frames
    if config.reference_positions == 1:
        return (0,)
    step = last / (config.reference_positions - 1)
    return tuple(int(round(i * step)) for i in range(config.reference_positions))


def _condition_clip(reference: Tensor, frames: int) -> Tensor:
    """The reference [3, H, W] in [-1, 1] followed by grey (zero) frames: [1, 3, frames, H, W]."""
    clip = torch.zeros(1, 3, frames, *reference.shape[-2:])
    clip[0, :, 0] = reference
    return clip


def _pool_to_latent(coverage_u8: Tensor, stride: int) -> Tensor:
    """[F, H, W] uint8 coverage -> [F, H / stride, W / stride] float mean coverage."""
    return F.avg_pool2d(coverage_u8.float().unsqueeze(1) / 255.0, stride).squeeze(1)


@torch.no_grad()
def build_latent_bank(vae: WanVAE, wav2vec2: nn.Module, bank: ClipBank, config: TrainConfig) -> LatentBank:
    stride = vae.spatial_stride
    positions = reference_positions(config)
    streams, starts, conds, feats, faces, mouths = [], [], [], [], [], []
    for n in range(bank.num_clips):
        pixels = to_model_pixels(bank.frames[n]).permute(1, 0, 2, 3).unsqueeze(0)  # [1, 3, F, H, W]
        streams.append(encode_video(vae, pixels)[0])
        starts.append(
            torch.stack([encode_video(vae, pixels[:, :, p : p + config.chunk_frames])[0] for p in positions])
        )
        references = [pixels[0, :, p] for p in positions] + [to_model_pixels(bank.references[n])]
        conds.append(
            torch.stack([encode_video(vae, _condition_clip(r, config.chunk_frames))[0] for r in references])
        )
        feats.append(torch.stack([encode_speech(wav2vec2, voice, fps=bank.fps, sample_rate=bank.sample_rate).float()
                                  for voice in bank.audio[n]]))
        faces.append(_pool_to_latent(bank.face[n], stride))
        mouths.append(_pool_to_latent(bank.mouth[n], stride))
    return LatentBank(
        stream=torch.stack(streams),
        start_frames=positions,
        start_streams=torch.stack(starts),
        conditions=torch.stack(conds),
        audio_features=torch.stack(feats),
        face=torch.stack(faces),
        mouth=torch.stack(mouths),
        speaker_masks=None if bank.speaker_masks is None else F.avg_pool2d(bank.speaker_masks, stride),
    )
