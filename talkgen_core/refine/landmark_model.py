"""A small landmark network for the embedded model's synthetic faces, trained on frames the renderer labels.

The renderer knows every landmark (:func:`talkgen_core.synth.landmarks.person_landmarks`), so training pairs
cost one render each: random training identities, placements, mouth openings, head poses and blinks, with
Gaussian heatmaps (:func:`.pose.pose_maps`) as targets. The network predicts one heatmap per landmark at the
frame's size; :func:`heatmap_peaks` reads positions back. It supplies the refiner's pose maps on the demo's
domain, where no off-the-shelf detector applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkgen_core.synth.identity import sample_identity, training_identity_seed
from talkgen_core.synth.landmarks import LANDMARKS, person_landmarks
from talkgen_core.synth.layout import sample_solo_placement
from talkgen_core.synth.motion import POSE_LIMIT
from talkgen_core.synth.render import PersonTrack, render_scene

from .pose import pose_maps

DEFAULT_SIGMA = 1.5  # heatmap width in pixels
PEAK_WEIGHT = 20.0  # the loss weighs pixels near a landmark this much more than the background


def synthetic_landmark_batch(rng: np.random.Generator, identities: int, frames: int,
                             size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``identities x frames`` rendered frames ``[N, 3, size, size]`` in [-1, 1] and their landmarks ``[N, K, 2]``."""
    images, points = [], []
    for _ in range(identities):
        identity = sample_identity(training_identity_seed(int(rng.integers(0, 1_000_000))))
        limit = torch.tensor(POSE_LIMIT, dtype=torch.float32)
        pose = torch.from_numpy(rng.uniform(-1.0, 1.0, (frames, 4))).float() * limit
        track = PersonTrack(identity, torch.from_numpy(rng.uniform(0.0, 1.0, frames)).float(), pose,
                            torch.from_numpy(rng.uniform(0.0, 1.0, frames)).float(), sample_solo_placement(rng))
        images.append(render_scene([track], size, size).frames.float() / 127.5 - 1.0)
        points.append(person_landmarks(track, size, size))
    return torch.cat(images), torch.cat(points)


class LandmarkNet(nn.Module):
    """Frames ``[N, 3, H, W]`` (H, W even) -> heatmaps ``[N, K, H, W]``: a stride-2 stem, dilated convolutions
    for a face-sized receptive field, and a bilinear return to full size."""

    def __init__(self, landmarks: int = len(LANDMARKS), width: int = 24) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU())
        self.context = nn.Sequential(*(layer for d in (1, 2, 4, 8) for layer in
                                       (nn.Conv2d(width, width, 3, padding=d, dilation=d), nn.SiLU())))
        self.head = nn.Sequential(nn.Conv2d(width + 3, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, landmarks, 1))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        features = self.context(self.stem(frames))
        up = F.interpolate(features, size=frames.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([up, frames], dim=1))


def heatmap_peaks(heatmaps: torch.Tensor) -> torch.Tensor:
    """``[N, K, H, W]`` -> the brightest pixel of each map as ``[N, K, 2]`` (x, y) pixel positions."""
    width = heatmaps.shape[-1]
    flat = heatmaps.flatten(2).argmax(dim=2)
    return torch.stack([flat % width, flat // width], dim=-1).float()


def heatmap_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error weighted towards the landmarks (a plain MSE is won by predicting zeros)."""
    return ((predicted - target) ** 2 * (1.0 + PEAK_WEIGHT * target)).mean()


@dataclass
class LandmarkTraining:
    losses: list[float] = field(default_factory=list)


def train_landmark_net(net: LandmarkNet, steps: int, *, size: int = 64, identities: int = 2, frames: int = 4,
                       sigma: float = DEFAULT_SIGMA, lr: float = 3e-3, seed: int = 0,
                       on_step: Optional[Callable[[int, float], None]] = None) -> LandmarkTraining:
    """Adam on fresh synthetic batches (``identities x frames`` frames of ``size`` pixels) for ``steps`` steps;
    deterministic in ``seed`` (the data and the batch order; the weights are the caller's)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    result = LandmarkTraining()
    net.train()
    for step in range(steps):
        images, points = synthetic_landmark_batch(rng, identities, frames, size)
        loss = heatmap_loss(net(images), pose_maps(points, size, size, sigma))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        value = float(loss.detach())
        result.losses.append(value)
        if on_step is not None:
            on_step(step, value)
    net.eval()
    return result
