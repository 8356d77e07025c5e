"""The landmark network: synthetic labelled batches, heatmap shapes, and a short training run lowers the loss."""

from __future__ import annotations

import numpy as np
import torch

from talkgen_core.refine.landmark_model import (
    LandmarkNet, heatmap_loss, heatmap_peaks, synthetic_landmark_batch, train_landmark_net,
)
from talkgen_core.refine.pose import pose_maps
from talkgen_core.synth.landmarks import LANDMARKS


def test_synthetic_batches_are_seeded_and_labelled_inside_the_frame():
    images, points = synthetic_landmark_batch(np.random.default_rng(4), 2, 3, 32)
    again, _ = synthetic_landmark_batch(np.random.default_rng(4), 2, 3, 32)
    assert images.shape == (6, 3, 32, 32) and points.shape == (6, len(LANDMARKS), 2) and torch.equal(images, again)
    assert images.min() >= -1 and images.max() <= 1 and points.min() > 0 and points.max() < 32


def test_peaks_read_back_heatmap_positions_and_the_net_keeps_the_size():
    points = torch.tensor([[[3.0, 5.0], [10.0, 1.0]]])
    assert torch.equal(heatmap_peaks(pose_maps(points, 12, 16, 1.0)), points)
    assert LandmarkNet(width=8)(torch.zeros(2, 3, 24, 32)).shape == (2, len(LANDMARKS), 24, 32)
    target = pose_maps(points, 12, 16, 1.0)
    assert heatmap_loss(target, target) == 0 and heatmap_loss(torch.zeros_like(target), target) > 0


def test_a_few_seconds_of_training_lower_the_loss():
    torch.manual_seed(0)
    net = LandmarkNet(width=12)
    losses = train_landmark_net(net, 40, size=32, identities=2, frames=2, lr=4e-3, seed=1).losses
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:4]), losses
