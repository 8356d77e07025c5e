"""Training chunks for the DiT, cut from the latent bank the way the streaming sampler builds its inputs.

Two kinds of sample:
- *first chunk*: a fresh stream from a reference position; the reference is the chunk's own first frame,
  whose latent (latent 0, the reference alone) is the one clean context latent, as in the sampler's
  chunk 0.
- *continuation*: a slice of the clip's whole-clip stream starting at latent ``j >= 1`` (frame ``4 j``);
  its first ``1 + (context_frames - 1) / 4`` latents are the clip's own past and stay clean, as the
  sampler pins the previous chunk's last latents. The reference is the cached frame nearest to the chunk
  (a frame near the chunk, InfiniteTalk's M3 policy) or, sometimes, the identity's neutral portrait, which
  is what the demo is given at inference.
Stage 1 uses first chunks of ``stage1_frames`` (short: audio-to-lip alignment); stage 2 mixes both kinds at
the sampler's full chunk length.

With ``memory_latents`` (the memory-bank recipe) a continuation also gets that many bank latents before it,
laid out as the ``memory-bank`` sampler lays them out (:func:`~talkgen_core.sampling.strategies.memory_bank.
with_memory`): the reference's own latent, then earlier latents of the clip's own stream, oldest first; they
and the context are noised to ``memory_sigma`` (``DiTBatch.memory_noise``). Such a stage-2 batch is all
continuations or all first chunks (their lengths differ), drawn once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.audio.windows import frame_windows
from talkgen_core.sampling.chunks import latent_frames
from talkgen_core.sampling.strategies.memory_bank import with_memory
from talkgen_core.sampling.streaming import first_frame_mask
from talkgen_core.train.config import TrainConfig
from talkgen_core.train.latents import LatentBank


@dataclass(frozen=True)
class DiTBatch:
    x0: Tensor  # [B, z, T, h, w] clean target latents
    cond: Tensor  # [B, 4 + z, T, h, w] first-frame mask | conditioning latent
    audio: Tensor  # [B, P, C, 5, L, D] per-video-frame audio windows per speaker, C = 1 + 4 (T - 1)
    clean: Tensor  # [B, 1, T, 1, 1] bool: pinned context latents (kept clean, left out of the loss)
    region: Tensor  # [B, 2, T, h, w] coverage per latent cell: channel 0 face, channel 1 mouth
    memory_noise: Tensor | None = None  # [B, 1, T, 1, 1] noise level of the clean latents (memory recipe)
    speaker_masks: Tensor | None = None  # [B, P, h, w] the part of the frame each speaker owns (P > 1)


@dataclass(frozen=True)
class _Pick:
    clip: int
    x0: Tensor  # [z, T, h, w]
    cond_latent: Tensor  # [z, T, h, w]
    start_frame: int
    context_latents: int
    memory: Tensor | None = None  # [z, M, h, w] bank latents before the chunk (memory recipe)


def latent_region_coverage(coverage: Tensor, start: int, num_frames: int) -> Tensor:
    """Per-frame coverage [F, h, w] -> per-latent [T, h, w] for the chunk of ``num_frames`` at ``start``.

    Latent 0 is frame ``start`` alone; latent i >= 1 is the maximum over its 4 frames (a mouth that opens
    anywhere in the group counts).
    """
    frames = coverage[start : start + num_frames]
    rest = frames[1:].reshape(-1, 4, *frames.shape[1:]).amax(dim=1)
    return torch.cat([frames[:1], rest], dim=0)


def _first_chunk(bank: LatentBank, clip: int, position: int, latents: int) -> _Pick:
    return _Pick(
        clip=clip,
        x0=bank.start_streams[clip, position, :, :latents],
        cond_latent=bank.conditions[clip, position, :, :latents],
        start_frame=bank.start_frames[position],
        context_latents=1,
    )


def _continuation(bank: LatentBank, config: TrainConfig, clip: int, generator: torch.Generator) -> _Pick:
    latents = latent_frames(config.chunk_frames)
    j = int(torch.randint(1, bank.stream.shape[2] - latents + 1, (1,), generator=generator))
    start = 4 * j
    if float(torch.rand((), generator=generator)) < config.neutral_reference:
        ref = len(bank.start_frames)  # the neutral portrait
    else:
        distances = torch.tensor([abs(p - start) for p in bank.start_frames])
        ref = int(torch.argmin(distances))
    memory = None
    if config.memory_latents:
        earlier = torch.randint(0, j, (config.memory_latents - 1,), generator=generator).sort().values
        memory = torch.cat([bank.conditions[clip, ref, :, :1], bank.stream[clip, :, earlier]], dim=1)
    return _Pick(
        clip=clip,
        x0=bank.stream[clip, :, j : j + latents],
        cond_latent=bank.conditions[clip, ref, :, :latents],
        start_frame=start,
        context_latents=latent_frames(config.context_frames),
        memory=memory,
    )


def sample_dit_batch(bank: LatentBank, config: TrainConfig, stage: int, generator: torch.Generator) -> DiTBatch:
    """One batch for curriculum ``stage`` (1: short first chunks, 2: full chunks, mostly continuations)."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    video_frames = config.stage1_frames if stage == 1 else config.chunk_frames
    latents = latent_frames(video_frames)
    picks = []
    per_batch = stage == 2 and config.memory_latents > 0  # memory: one kind per batch (lengths differ)
    batch_continues = per_batch and float(torch.rand((), generator=generator)) < config.stage2_continuation
    for _ in range(config.dit_batch):
        clip = int(torch.randint(bank.num_clips, (1,), generator=generator))
        continuation = batch_continues if per_batch else (
            stage == 2 and float(torch.rand((), generator=generator)) < config.stage2_continuation)
        if continuation:
            picks.append(_continuation(bank, config, clip, generator))
        else:
            position = int(torch.randint(len(bank.start_frames), (1,), generator=generator))
            picks.append(_first_chunk(bank, clip, position, latents))
    return _assemble(bank, picks, video_frames, config.memory_sigma)


def _assemble(bank: LatentBank, picks: list[_Pick], video_frames: int, memory_sigma: float = 0.0) -> DiTBatch:
    x0 = torch.stack([p.x0 for p in picks])
    b, _, t, h, w = x0.shape
    mask = first_frame_mask(video_frames, h, w).expand(b, -1, -1, -1, -1)
    cond = torch.cat([mask, torch.stack([p.cond_latent for p in picks])], dim=1)
    audio = torch.stack([
        torch.stack([frame_windows(voice, p.start_frame, video_frames) for voice in bank.audio_features[p.clip]])
        for p in picks
    ])
    masks = None if bank.speaker_masks is None else torch.stack([bank.speaker_masks[p.clip] for p in picks])
    clean = torch.zeros(b, 1, t, 1, 1, dtype=torch.bool)
    for i, p in enumerate(picks):
        clean[i, :, : p.context_latents] = True
    region = torch.stack(
        [
            torch.stack(
                [
                    latent_region_coverage(bank.face[p.clip], p.start_frame, video_frames),
                    latent_region_coverage(bank.mouth[p.clip], p.start_frame, video_frames),
                ]
            )
            for p in picks
        ]
    )
    if picks[0].memory is None:
        return DiTBatch(x0=x0, cond=cond, audio=audio, clean=clean, region=region, speaker_masks=masks)
    memory = torch.stack([p.memory for p in picks])  # [B, z, M, h, w]
    m = memory.shape[2]
    cond, audio = with_memory(cond, audio, m)
    clean = torch.cat([torch.ones(b, 1, m, 1, 1, dtype=torch.bool), clean], dim=2)
    region = torch.cat([torch.zeros(b, 2, m, h, w), region], dim=2)
    return DiTBatch(x0=torch.cat([memory, x0], dim=2), cond=cond, audio=audio, clean=clean, region=region,
                    memory_noise=clean.float() * memory_sigma, speaker_masks=masks)
