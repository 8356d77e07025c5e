"""The rendered training set: synthetic talking clips kept compactly in memory.

Solo clip ``i`` is ``make_clip(i)`` (identity ``training_identity_seed(i)``, never a held-out face), placed in
the frame by ``solo_placement(i)`` when the config varies placements; two-person clip ``i`` is
``make_pair_clip(PAIR_SEED_OFFSET + i)``. The set is fully determined by its sizes and can be rebuilt
bit-for-bit when a run resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from talkgen_core.synth import make_clip, render_reference
from talkgen_core.synth.clip import make_pair_clip
from talkgen_core.synth.layout import Placement, sample_solo_placement
from talkgen_core.synth.render import neutral_track, render_scene
from talkgen_core.train.config import TrainConfig

PAIR_SEED_OFFSET = 500_000  # two-person clips draw identities 2 s and 2 s + 1: far past the solo clips'



@dataclass(frozen=True)
class ClipBank:
    """N clips of F frames at H x W pixels with P speakers each (P = 1: one person alone)."""

    frames: Tensor  # [N, F, 3, H, W] uint8
    face: Tensor  # [N, F, H, W] uint8, face coverage x 255 (every person's)
    mouth: Tensor  # [N, F, H, W] uint8, mouth coverage x 255 (every person's)
    audio: Tensor  # [N, P, S] float32 at 16 kHz, S = F * 16000 / fps: each speaker's own voice
    references: Tensor  # [N, 3, H, W] uint8: the scene in its neutral pose (what the demo is given)
    sample_rate: int
    fps: float
    eye: Tensor | None = None  # [N, F, H, W] uint8, eye coverage x 255 (every person's)
    speaker_masks: Tensor | None = None  # [N, P, H, W] float: the frame part each speaker owns (P > 1)

    @property
    def num_speakers(self) -> int:
        return int(self.audio.shape[1])

    @property
    def num_clips(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[1])


def _to_u8(coverage: Tensor) -> Tensor:
    return (coverage * 255.0).round().to(torch.uint8)


def solo_placement(config: TrainConfig, index: int) -> Placement:
    """Where solo clip ``index`` stands: anywhere (``vary_placement``) or the centred portrait."""
    if not config.vary_placement:
        return Placement()
    return sample_solo_placement(np.random.default_rng([index, 0x91ACE]))


def render_clip_bank(config: TrainConfig, first_clip: int, num_clips: int) -> ClipBank:
    """Render solo clips ``first_clip .. first_clip + num_clips - 1`` at the config's size and length."""
    frames, faces, mouths, eyes, audios, refs = [], [], [], [], [], []
    for i in range(first_clip, first_clip + num_clips):
        placement = solo_placement(config, i)
        clip = make_clip(i, num_frames=config.clip_frames, size=config.size, fps=config.fps, placement=placement)
        frames.append(clip.frames)
        faces.append(_to_u8(clip.face_mask))
        mouths.append(_to_u8(clip.mouth_mask))
        assert clip.eye_mask is not None
        eyes.append(_to_u8(clip.eye_mask))
        audios.append(clip.audio[None])
        refs.append(render_reference(clip.identity, config.size, placement))
    return ClipBank(
        frames=torch.stack(frames), face=torch.stack(faces), mouth=torch.stack(mouths), audio=torch.stack(audios),
        references=torch.stack(refs), sample_rate=16000, fps=config.fps, eye=torch.stack(eyes),
    )


def speaker_columns(centres_x: list[float], height: int, width: int) -> Tensor:
    """[P, H, W] masks splitting the frame at the midpoints between the speakers' centres (left to right)."""
    xs = ((torch.arange(width, dtype=torch.float32) + 0.5) / height * 2.0) - width / height
    cuts = [-float("inf")] + [(a + b) / 2 for a, b in zip(centres_x, centres_x[1:])] + [float("inf")]
    masks = [((xs >= lo) & (xs < hi)).float().expand(height, width) for lo, hi in zip(cuts, cuts[1:])]
    return torch.stack(masks)


def render_pair_bank(config: TrainConfig, first_clip: int, num_clips: int) -> ClipBank:
    """Two-person clips (``make_pair_clip``) on a ``2 size x size`` frame: turns, overlaps, varied spacing."""
    frames, faces, mouths, eyes, audios, refs, masks = [], [], [], [], [], [], []
    h, w = config.size, 2 * config.size
    for i in range(first_clip, first_clip + num_clips):
        clip = make_pair_clip(PAIR_SEED_OFFSET + i, num_frames=config.clip_frames, height=h, fps=config.fps)
        frames.append(clip.frames)
        faces.append(_to_u8(clip.face_mask.amax(dim=0)))
        mouths.append(_to_u8(clip.mouth_mask.amax(dim=0)))
        eyes.append(_to_u8(clip.eye_mask.amax(dim=0)))
        audios.append(clip.audio)
        people = [neutral_track(ident, place) for ident, place in zip(clip.identities, clip.placements)]
        refs.append(render_scene(people, h, w).frames[0])
        masks.append(speaker_columns([p.cx for p in clip.placements], h, w))
    return ClipBank(
        frames=torch.stack(frames), face=torch.stack(faces), mouth=torch.stack(mouths), audio=torch.stack(audios),
        references=torch.stack(refs), sample_rate=16000, fps=config.fps, eye=torch.stack(eyes),
        speaker_masks=torch.stack(masks),
    )


def to_model_pixels(frames_u8: Tensor) -> Tensor:
    """uint8 ``[..., 3, H, W]`` -> float in [-1, 1] (the core's pixel convention)."""
    return frames_u8.float() / 127.5 - 1.0
