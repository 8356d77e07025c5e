"""A synthetic talking clip: speech-like audio, the rendered face that speaks it, and exact ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from talkgen_core.synth.envelope import frame_rms
from talkgen_core.synth.identity import FaceIdentity, sample_identity, training_identity_seed
from talkgen_core.synth.motion import (
    DEFAULT_LEAD_FRAMES,
    blink_track,
    head_pose_track,
    mouth_opening_from_envelope,
)
from talkgen_core.synth.render import render_frames
from talkgen_core.synth.speech import SAMPLE_RATE, synthesize_speech

DEFAULT_FPS = 25.0


@dataclass(frozen=True)
class TalkingClip:
    """One clip. ``frames`` are uint8 ``[T, 3, H, W]``; use ``frames_float()`` for the core's [-1, 1]."""

    frames: Tensor  # [T, 3, H, W] uint8
    audio: Tensor  # [S] float32 mono, S = T * sample_rate / fps
    sample_rate: int
    fps: float
    mouth_opening: Tensor  # [T] in [0, 1], ground truth the frames were drawn with
    head_pose: Tensor  # [T, 4] (dx, dy, roll, yaw); see render.py for units
    blink: Tensor  # [T] in [0, 1]
    face_mask: Tensor  # [T, H, W] float coverage of facial skin
    mouth_mask: Tensor  # [T, H, W] float coverage of lips + interior (dilated)
    identity: FaceIdentity
    lead_frames: float  # how many frames the mouth leads the audio

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def frames_float(self) -> Tensor:
        """Frames as float ``[T, 3, H, W]`` in [-1, 1]."""
        return self.frames.float() / 127.5 - 1.0


def make_clip(
    seed: int,
    num_frames: int = 125,
    size: int = 128,
    fps: float = DEFAULT_FPS,
    identity: FaceIdentity | int | None = None,
    lead_frames: float = DEFAULT_LEAD_FRAMES,
    audio: Tensor | None = None,
) -> TalkingClip:
    """Build one clip deterministically from ``seed``.

    identity: a ``FaceIdentity``, an identity seed, or None for ``training_identity_seed(seed)`` (never a
    held-out face). audio: optional 16 kHz mono ``[S]`` to drive the face instead of synthetic speech; it
    is cut or zero-padded to the clip length.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if identity is None:
        identity = sample_identity(training_identity_seed(seed))
    elif isinstance(identity, int):
        identity = sample_identity(identity)
    num_samples = int(round(num_frames * SAMPLE_RATE / fps))
    if audio is None:
        audio = synthesize_speech(seed, num_samples)
    else:
        audio = audio.float()[:num_samples]
        audio = torch.nn.functional.pad(audio, (0, num_samples - audio.shape[0]))
    rng = np.random.default_rng([seed, 0xC11F])
    opening = mouth_opening_from_envelope(frame_rms(audio, SAMPLE_RATE, fps, num_frames), lead_frames)
    blink = blink_track(rng, num_frames, fps)
    pose = head_pose_track(rng, opening, fps)
    rendered = render_frames(identity, opening, pose, blink, size)
    return TalkingClip(
        frames=rendered.frames,
        audio=audio,
        sample_rate=SAMPLE_RATE,
        fps=fps,
        mouth_opening=opening,
        head_pose=pose,
        blink=blink,
        face_mask=rendered.face_mask,
        mouth_mask=rendered.mouth_mask,
        identity=identity,
        lead_frames=lead_frames,
    )
