"""Synthetic landmarks sit on the features the renderer draws: mouth points in its mouth mask, eyes in its eye mask."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.synth.identity import sample_identity
from talkgen_core.synth.landmarks import LANDMARKS, person_landmarks
from talkgen_core.synth.layout import Placement
from talkgen_core.synth.render import PersonTrack, render_scene

MOUTH = [LANDMARKS.index(n) for n in ("mouth_left", "mouth_right", "upper_lip", "lower_lip")]
EYES = [LANDMARKS.index(n) for n in ("eye_left", "eye_right")]


def _track(seed: int, placement: Placement) -> PersonTrack:
    opening = torch.tensor([0.0, 0.3, 0.7, 1.0])
    pose = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.05, -0.04, 0.12, 0.5], [-0.07, 0.05, -0.14, -0.7],
                         [0.02, 0.0, 0.05, 0.2]])
    return PersonTrack(sample_identity(seed), opening, pose, torch.zeros(4), placement)


def _mask_at(mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """mask [T, H, W] at points [T, N, 2] (x, y), nearest pixel: [T, N]."""
    cols, rows = points[..., 0].round().long(), points[..., 1].round().long()
    return torch.stack([mask[t, rows[t], cols[t]] for t in range(mask.shape[0])])


@pytest.mark.parametrize("seed,placement,size", [(3, Placement(), (96, 96)), (11, Placement(0.3, 0.1, 0.7), (80, 128))])
def test_mouth_and_eye_landmarks_lie_in_the_renderers_masks(seed, placement, size):
    height, width = size
    track = _track(seed, placement)
    scene = render_scene([track], height, width)
    points = person_landmarks(track, height, width)
    assert points.shape == (4, len(LANDMARKS), 2)
    assert (_mask_at(scene.mouth_mask[0], points[:, MOUTH]) > 0.5).all()
    assert (_mask_at(scene.eye_mask[0], points[:, EYES]) > 0.5).all()
    assert (_mask_at(scene.eye_mask[0], points[:, MOUTH]) < 0.5).all()  # and not just anywhere
    nose, chin = LANDMARKS.index("nose_tip"), LANDMARKS.index("chin")
    assert (_mask_at(scene.face_mask[0], points[:, [nose]]) > 0.5).all()
    assert (points[:, chin, 1] > points[:, LANDMARKS.index("lower_lip"), 1]).all()  # the chin is below the lips


def test_lips_part_with_the_mouth_opening_and_landmarks_follow_the_head():
    track = _track(3, Placement())
    points = person_landmarks(track, 64, 64)
    gap = points[:, LANDMARKS.index("lower_lip"), 1] - points[:, LANDMARKS.index("upper_lip"), 1]
    assert torch.all(gap[1:] > gap[:-1])
    moved = PersonTrack(track.identity, track.mouth_opening, track.head_pose + torch.tensor([0.1, 0.0, 0.0, 0.0]),
                        track.blink)
    shift = person_landmarks(moved, 64, 64) - points
    assert torch.allclose(shift[..., 0], torch.full_like(shift[..., 0], 0.1 * 32), atol=1e-4)  # 0.1 scene = 3.2 px
    assert torch.allclose(shift[..., 1], torch.zeros_like(shift[..., 1]), atol=1e-4)
