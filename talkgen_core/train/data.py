"""The rendered training set: synthetic talking clips kept compactly in memory.

Clip ``i`` is ``make_clip(i)`` (identity ``training_identity_seed(i)``, never a held-out face), so the set
is fully determined by its size and can be rebuilt bit-for-bit when a run resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.synth import make_clip, render_reference
from talkgen_core.train.config import TrainConfig


@dataclass(frozen=True)
class ClipBank:
    """N clips of F frames at H x W pixels."""

    frames: Tensor  # [N, F, 3, H, W] uint8
    face: Tensor  # [N, F, H, W] uint8, face coverage x 255
    mouth: Tensor  # [N, F, H, W] uint8, mouth coverage x 255
    audio: Tensor  # [N, S] float32 at 16 kHz, S = F * 16000 / fps
    references: Tensor  # [N, 3, H, W] uint8: each identity's neutral portrait (what the demo is given)
    sample_rate: int
    fps: float

    @property
    def num_clips(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[1])


def _to_u8(coverage: Tensor) -> Tensor:
    return (coverage * 255.0).round().to(torch.uint8)


def render_clip_bank(config: TrainConfig, first_clip: int, num_clips: int) -> ClipBank:
    """Render clips ``first_clip .. first_clip + num_clips - 1`` at the config's size and length."""
    frames, faces, mouths, audios, refs = [], [], [], [], []
    sample_rate = 16000
    for i in range(first_clip, first_clip + num_clips):
        clip = make_clip(i, num_frames=config.clip_frames, size=config.size, fps=config.fps)
        frames.append(clip.frames)
        faces.append(_to_u8(clip.face_mask))
        mouths.append(_to_u8(clip.mouth_mask))
        audios.append(clip.audio)
        refs.append(render_reference(clip.identity, config.size))
        sample_rate = clip.sample_rate
    return ClipBank(
        frames=torch.stack(frames),
        face=torch.stack(faces),
        mouth=torch.stack(mouths),
        audio=torch.stack(audios),
        references=torch.stack(refs),
        sample_rate=sample_rate,
        fps=config.fps,
    )


def to_model_pixels(frames_u8: Tensor) -> Tensor:
    """uint8 ``[..., 3, H, W]`` -> float in [-1, 1] (the core's pixel convention)."""
    return frames_u8.float() / 127.5 - 1.0
