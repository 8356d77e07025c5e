"""Faces placed anywhere in the frame, and two people side by side."""

import numpy as np
import pytest
import torch

from talkgen_core.synth import make_clip, render_reference, sample_identity
from talkgen_core.synth.clip import OVERLAP_SHARE, make_pair_clip, turn_gates
from talkgen_core.synth.envelope import frame_rms
from talkgen_core.synth.layout import (
    Placement, columns_placements, sample_pair_placements, sample_solo_placement,
)
from talkgen_core.synth.render import neutral_track, render_frames, render_scene

SIZE = 64


def _centroid(mask: torch.Tensor) -> tuple[float, float]:
    """[H, W] coverage -> (x, y) centroid in scene units (y over the height in [-1, 1])."""
    h, w = mask.shape
    ys = (torch.arange(h) + 0.5) / h * 2 - 1
    xs = (torch.arange(w) + 0.5) / h * 2 - w / h
    total = mask.sum()
    return float((mask.sum(0) * xs).sum() / total), float((mask.sum(1) * ys).sum() / total)


def _neutral(identity, placement, height=SIZE, width=SIZE):
    return render_scene([neutral_track(identity, placement)], height, width)


def test_the_default_placement_is_the_portrait():
    ident = sample_identity(7)
    assert torch.equal(render_reference(ident, SIZE), render_reference(ident, SIZE, Placement()))
    with pytest.raises(ValueError, match="scale"):
        Placement(scale=0.0)


def test_a_placed_face_moves_and_shrinks_with_its_placement():
    ident = sample_identity(7)
    base = _neutral(ident, Placement())
    moved = _neutral(ident, Placement(0.25, -0.2, 0.6))
    for masks in ("mouth_mask", "eye_mask", "face_mask"):
        (x0, y0), (x1, y1) = _centroid(getattr(base, masks)[0, 0]), _centroid(getattr(moved, masks)[0, 0])
        assert x1 == pytest.approx(0.25 + 0.6 * x0, abs=0.03)
        assert y1 == pytest.approx(-0.2 + 0.6 * y0, abs=0.03)
    area = lambda r: float(r.face_mask.sum())  # noqa: E731
    assert area(moved) / area(base) == pytest.approx(0.36, rel=0.08)


def test_solo_placements_keep_the_face_in_the_frame():
    ident = sample_identity(7)
    full = float(_neutral(ident, Placement()).face_mask.sum())
    scales = []
    for seed in range(40):
        p = sample_solo_placement(np.random.default_rng(seed))
        scales.append(p.scale)
        big = render_scene([neutral_track(ident, p)], 3 * SIZE, 3 * SIZE)  # the same scene with room around
        inside = float(_neutral(ident, p).face_mask.sum())
        assert inside == pytest.approx(float(big.face_mask.sum()) / 9.0, rel=0.06)  # nothing cut off
        assert inside > 0.2 * full
    assert min(scales) < 0.7 and max(scales) > 1.0


def test_two_people_stand_apart_on_a_wide_frame():
    a, b = sample_identity(8), sample_identity(9)
    for seed in range(20):
        left, right = sample_pair_placements(np.random.default_rng(seed))
        assert left.cx < right.cx
        scene = render_scene([neutral_track(a, left), neutral_track(b, right)], SIZE, 2 * SIZE)
        faces = scene.face_mask[:, 0]
        assert float((faces[0] * faces[1]).sum()) == 0.0  # faces never overlap
        assert _centroid(faces[0])[0] < 0 < _centroid(faces[1])[0]
        assert float(scene.mouth_mask[0, 0].sum()) > 1.0 and float(scene.mouth_mask[1, 0].sum()) > 1.0
    cols = columns_placements(2, 2.0)
    assert [p.cx for p in cols] == [-1.0, 1.0] and all(p.scale == 1.0 for p in cols)


def test_turn_gates_take_turns_and_sometimes_overlap():
    gates = turn_gates(np.random.default_rng(3), 16000 * 60)
    assert gates.shape == (2, 16000 * 60) and float(gates.min()) >= 0.0 and float(gates.max()) <= 1.0 + 1e-6
    on = gates > 0.5
    both, alone = float((on[0] & on[1]).float().mean()), float((on[0] ^ on[1]).float().mean())
    assert 0.08 < both < 2 * OVERLAP_SHARE and alone > 0.5
    assert float(on[0].float().mean()) > 0.3 and float(on[1].float().mean()) > 0.3


def test_each_person_of_a_pair_speaks_with_their_own_voice():
    clip = make_pair_clip(4, num_frames=250, height=SIZE)
    assert clip.frames.shape == (250, 3, SIZE, 2 * SIZE) and clip.audio.shape == (2, 160000)
    env = torch.stack([frame_rms(v, 16000, 25.0, 250) for v in clip.audio])
    r = np.corrcoef(torch.cat([clip.mouth_opening, env]).numpy())
    assert r[0, 2] > 0.8 and r[1, 3] > 0.8  # each mouth with its own voice
    assert r[0, 3] < r[0, 2] - 0.4 and r[1, 2] < r[1, 3] - 0.4
    mouths = clip.mouth_mask.sum(dim=(2, 3))  # [P, T]: the drawn mouth follows the opening
    assert np.corrcoef(mouths[0].numpy(), clip.mouth_opening[0].numpy())[0, 1] > 0.9


def test_the_clip_records_where_its_face_and_eyes_are():
    p = Placement(-0.2, 0.1, 0.7)
    clip = make_clip(5, num_frames=9, size=SIZE, placement=p)
    alone = render_frames(clip.identity, clip.mouth_opening, clip.head_pose, clip.blink, SIZE, p)
    assert torch.equal(clip.frames, alone.frames) and clip.placement == p
    assert clip.eye_mask is not None and float(clip.eye_mask[0].sum()) > 5.0
