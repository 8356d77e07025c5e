"""Per-frame driving signals for a synthetic talking face: mouth opening, blinks and head pose.

- The mouth opening follows the audio RMS envelope, compressed and slightly smoothed, and *leads* the
  audio by ``lead_frames`` (frame ``t`` shows the opening for the sound at ``t + lead``), as real mouths
  start moving before the sound comes out.
- Blinks come at random intervals (mean ~3.5 s) with a fast close and slower open.
- Head pose is a slow random walk whose amplitude grows while speaking, plus movements the speech drives
  (nods on loud syllables, a lean over phrases, a turn as a phrase's energy changes).
All smoothing is zero-phase, so none of it adds a lag of its own.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

DEFAULT_LEAD_FRAMES = 1.0
OPENING_EXPONENT = 0.7  # < 1 compresses: quiet syllables still open the mouth visibly
NOISE_GATE = 0.05  # envelope below this fraction of the loud level keeps the mouth shut
BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.08, 0.04, 0.15
POSE_AMPLITUDE = (0.025, 0.015, 0.05, 0.25)  # dx, dy, roll (rad), yaw at unit walk
POSE_LIMIT = (0.08, 0.06, 0.15, 0.8)  # soft bounds (tanh) the renderer's feature window is sized for
# Speech-driven parts of the pose (a function of the audio, so a model can learn them): nods on syllables,
# a sideways lean over phrases and a turn as a phrase's energy changes.
PROSODY_NOD, PROSODY_SWAY, PROSODY_TURN = 0.05, 0.04, 0.15


def _gaussian_smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing along axis 0 with edge padding."""
    if sigma_frames <= 0:
        return x
    radius = max(int(3 * sigma_frames), 1)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    k /= k.sum()
    padded = np.pad(x, [(radius, radius)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    if x.ndim == 1:
        return np.convolve(padded, k, mode="valid")
    return np.stack([np.convolve(padded[:, i], k, mode="valid") for i in range(x.shape[1])], axis=1)


def mouth_opening_from_envelope(rms: Tensor, lead_frames: float = DEFAULT_LEAD_FRAMES) -> Tensor:
    """Audio RMS per frame [T] -> mouth opening [T] in [0, 1], leading the audio by ``lead_frames``.

    The loud level is the 95th percentile of the clip's envelope, so the mapping adapts to the recording
    level; a fractional lead is applied by linear interpolation (clamped at the clip ends).
    """
    env = rms.double().numpy()
    t = env.shape[0]
    loud = float(np.percentile(env, 95)) if t else 0.0
    if loud <= 1e-9:
        return torch.zeros(t)
    level = np.clip((env / loud - NOISE_GATE) / (1.0 - NOISE_GATE), 0.0, 1.0) ** OPENING_EXPONENT
    shifted = np.interp(np.arange(t) + lead_frames, np.arange(t), level)
    smooth = np.convolve(np.pad(shifted, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    return torch.from_numpy(np.clip(smooth, 0.0, 1.0)).float()


def blink_track(rng: np.random.Generator, num_frames: int, fps: float) -> Tensor:
    """Eyelid closure [T] in [0, 1] with randomly timed blinks."""
    times = np.arange(num_frames) / fps
    closure = np.zeros(num_frames)
    start = rng.uniform(0.3, 3.0)
    duration = times[-1] + 1.0 if num_frames else 0.0
    while start < duration:
        rel = times - start
        closing = np.clip(rel / BLINK_CLOSE_S, 0.0, 1.0)
        opening = np.clip(1.0 - (rel - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S, 0.0, 1.0)
        closure = np.maximum(closure, np.minimum(closing, opening) * (rel >= 0))
        start += max(rng.exponential(3.5), 1.0)
    return torch.from_numpy(closure).float()


def head_pose_track(rng: np.random.Generator, speech_energy: Tensor, fps: float) -> Tensor:
    """Head pose [T, 4] = (dx, dy, roll, yaw) driven by a random walk and the speech energy [T] in [0, 1]."""
    t = speech_energy.shape[0]
    energy = speech_energy.double().numpy()
    walk = _gaussian_smooth(rng.normal(size=(t, 4)), 0.6 * fps)
    walk = walk / (walk.std(axis=0, keepdims=True) + 1e-9) if t > 1 else walk * 0.0
    activity = 0.5 + 0.8 * _gaussian_smooth(energy, 0.8 * fps)
    pose = walk * np.asarray(POSE_AMPLITUDE)[None, :] * activity[:, None]
    nod = _gaussian_smooth(energy, 0.12 * fps)
    phrase = _gaussian_smooth(energy, 0.5 * fps)
    pose[:, 1] += PROSODY_NOD * (nod - nod.mean())  # loud syllables dip the head
    pose[:, 0] += PROSODY_SWAY * (phrase - phrase.mean())  # phrases lean the head sideways
    if t > 1:
        pose[:, 2] += 0.002 * np.gradient(nod) * fps  # a small roll on syllable onsets
        pose[:, 3] += PROSODY_TURN * np.gradient(phrase) * fps  # and a turn as a phrase rises or falls
    limit = np.asarray(POSE_LIMIT)[None, :]
    return torch.from_numpy(limit * np.tanh(pose / limit)).float()
