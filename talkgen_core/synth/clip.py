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
from talkgen_core.synth.layout import Placement, sample_pair_placements
from talkgen_core.synth.render import PersonTrack, render_frames, render_scene
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
    eye_mask: Tensor | None = None  # [T, H, W] float coverage of the eyes and brows
    placement: Placement = Placement()

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
    placement: Placement = Placement(),
) -> TalkingClip:
    """Build one clip deterministically from ``seed``.

    identity: a ``FaceIdentity``, an identity seed, or None for ``training_identity_seed(seed)`` (never a
    held-out face). audio: optional 16 kHz mono ``[S]`` to drive the face instead of synthetic speech; it
    is cut or zero-padded to the clip length. placement: where the face stands (default: the centred portrait).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if identity is None:
        identity = sample_identity(training_identity_seed(seed))
    elif isinstance(identity, int):
        identity = sample_identity(identity)
    num_samples = int(round(num_frames * SAMPLE_RATE / fps))
    audio = synthesize_speech(seed, num_samples) if audio is None else _fit(audio, num_samples)
    rng = np.random.default_rng([seed, 0xC11F])
    opening, pose, blink = _drive(rng, audio, num_frames, fps, lead_frames)
    rendered = render_frames(identity, opening, pose, blink, size, placement)
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
        eye_mask=rendered.eye_mask,
        placement=placement,
    )


def _fit(audio: Tensor, num_samples: int) -> Tensor:
    """Cut or zero-pad 16 kHz mono audio [S] to ``num_samples``."""
    audio = audio.float()[:num_samples]
    return torch.nn.functional.pad(audio, (0, num_samples - audio.shape[0]))


def _drive(
    rng: np.random.Generator, audio: Tensor, num_frames: int, fps: float, lead_frames: float
) -> tuple[Tensor, Tensor, Tensor]:
    """One person's audio [S] -> mouth opening [T], head pose [T, 4], blink [T]."""
    opening = mouth_opening_from_envelope(frame_rms(audio, SAMPLE_RATE, fps, num_frames), lead_frames)
    blink = blink_track(rng, num_frames, fps)
    return opening, head_pose_track(rng, opening, fps), blink


# Two-person conversations: turns of 1-3 s alternate; in a share of them both people speak at once.
TURN_SECONDS = (1.0, 3.0)
OVERLAP_SHARE = 0.25
TURN_RAMP_S = 0.03


@dataclass(frozen=True)
class SceneClip:
    """People talking in one frame. Per-person fields have a leading speaker axis P (speaker 1 first)."""

    frames: Tensor  # [T, 3, H, W] uint8
    audio: Tensor  # [P, S] float32: each person's own voice (the mix is their sum)
    sample_rate: int
    fps: float
    mouth_opening: Tensor  # [P, T]
    head_pose: Tensor  # [P, T, 4]
    face_mask: Tensor  # [P, T, H, W]
    mouth_mask: Tensor  # [P, T, H, W]
    eye_mask: Tensor  # [P, T, H, W]
    identities: tuple[FaceIdentity, ...]
    placements: tuple[Placement, ...]

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def turn_gates(rng: np.random.Generator, num_samples: int, speakers: int = 2) -> Tensor:
    """[P, S] gains in [0, 1]: who speaks when. Turns alternate; some are spoken by everyone at once."""
    gates = np.zeros((speakers, num_samples))
    start, turn = 0, int(rng.integers(speakers))
    while start < num_samples:
        length = int(rng.uniform(*TURN_SECONDS) * SAMPLE_RATE)
        if rng.random() < OVERLAP_SHARE:
            gates[:, start : start + length] = 1.0
        else:
            gates[turn, start : start + length] = 1.0
            turn = (turn + 1) % speakers
        start += length
    ramp = max(int(TURN_RAMP_S * SAMPLE_RATE), 1)
    kernel = np.ones(ramp) / ramp
    smooth = np.stack([np.convolve(g, kernel, mode="same") for g in gates])
    return torch.from_numpy(smooth).float()


def make_pair_clip(
    seed: int,
    num_frames: int = 125,
    height: int = 64,
    fps: float = DEFAULT_FPS,
    identities: tuple[FaceIdentity | int, FaceIdentity | int] | None = None,
    audio: Tensor | None = None,  # [2, S]: each person's voice; None: synthetic speech in turns
    placements: tuple[Placement, Placement] | None = None,
    lead_frames: float = DEFAULT_LEAD_FRAMES,
) -> SceneClip:
    """Two people side by side on a ``2 height x height`` frame, each driven by their own voice.

    Defaults are drawn from ``seed``: two training identities (``training_identity_seed(2 seed)`` and
    ``+ 1``, never held out), voices from seeds ``2 seed`` and ``2 seed + 1`` gated into turns with overlaps,
    and varied spacing.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    rng = np.random.default_rng([seed, 0x2FACE])
    if identities is None:
        identities = (training_identity_seed(2 * seed), training_identity_seed(2 * seed + 1))
    people = tuple(sample_identity(i) if isinstance(i, int) else i for i in identities)
    num_samples = int(round(num_frames * SAMPLE_RATE / fps))
    if audio is None:
        voices = torch.stack([synthesize_speech(2 * seed + k, num_samples) for k in range(2)])
        audio = voices * turn_gates(rng, num_samples)
    else:
        if audio.dim() != 2 or audio.shape[0] != 2:
            raise ValueError(f"audio must be [2, S], one voice per person, got shape {tuple(audio.shape)}")
        audio = torch.stack([_fit(a, num_samples) for a in audio])
    placements = placements or sample_pair_placements(rng)
    tracks, openings, poses = [], [], []
    for k in range(2):
        opening, pose, blink = _drive(np.random.default_rng([seed, 0xC11F, k]), audio[k], num_frames, fps, lead_frames)
        tracks.append(PersonTrack(people[k], opening, pose, blink, placements[k]))
        openings.append(opening)
        poses.append(pose)
    scene = render_scene(tracks, height, 2 * height)
    return SceneClip(
        frames=scene.frames, audio=audio, sample_rate=SAMPLE_RATE, fps=fps, mouth_opening=torch.stack(openings),
        head_pose=torch.stack(poses), face_mask=scene.face_mask, mouth_mask=scene.mouth_mask,
        eye_mask=scene.eye_mask, identities=people, placements=tuple(placements),
    )
