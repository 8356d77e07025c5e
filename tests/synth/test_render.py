import pytest
import torch
import torch.nn.functional as F

from talkgen_core.metrics.lipsync import measure_mouth_opening
from talkgen_core.synth.identity import sample_identity
from talkgen_core.synth.render import render_frames, render_reference

IDENT = sample_identity(1001)


def _state(t: int, opening: float = 0.0, blink: float = 0.0) -> tuple[torch.Tensor, ...]:
    return torch.full((t,), opening), torch.zeros(t, 4), torch.full((t,), blink)


def test_deterministic_and_identity_dependent():
    a = render_reference(IDENT, 64)
    assert torch.equal(a, render_reference(IDENT, 64))
    assert not torch.equal(a, render_reference(sample_identity(1002), 64))


@pytest.mark.parametrize("size", [64, 128, 256])
def test_shapes_dtypes_and_mask_ranges(size):
    out = render_frames(IDENT, *_state(2, opening=0.7), size=size)
    assert out.frames.shape == (2, 3, size, size) and out.frames.dtype == torch.uint8
    assert out.face_mask.shape == out.mouth_mask.shape == (2, size, size)
    for mask in (out.face_mask, out.mouth_mask):
        assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    area = out.face_mask.mean().item()
    assert 0.1 < area < 0.5  # the face fills a sensible part of the picture at every size


def test_resolution_independent_drawing():
    """Anti-aliased SDF drawing: a 256 px render box-downsampled to 64 px matches a direct 64 px render."""
    big = render_reference(IDENT, 256).float().unsqueeze(0)
    small = render_reference(IDENT, 64).float().unsqueeze(0)
    down = F.avg_pool2d(big, 4)
    assert (down - small).abs().mean().item() < 3.0  # out of 255


def test_mouth_interior_grows_with_opening_and_is_absent_when_closed():
    openings = torch.linspace(0.0, 1.0, 6)
    out = render_frames(IDENT, openings, torch.zeros(6, 4), torch.zeros(6), 128)
    measured = measure_mouth_opening(out.frames)
    assert measured[0].item() < 1e-4
    assert bool((measured[1:] > measured[:-1]).all())


def test_blink_only_changes_the_upper_face():
    out = render_frames(IDENT, torch.zeros(2), torch.zeros(2, 4), torch.tensor([0.0, 1.0]), 128)
    diff = (out.frames[0].float() - out.frames[1].float()).abs().sum(dim=0)  # [H, W]
    rows = diff.sum(dim=1).nonzero().flatten()
    assert rows.numel() > 0
    assert rows.max().item() < 64  # eyes sit above the image centre line


def test_head_translation_moves_the_face():
    pose = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.06, 0.0, 0.0, 0.0]])
    out = render_frames(IDENT, torch.zeros(2), pose, torch.zeros(2), 128)
    cols = torch.arange(128, dtype=torch.float32)
    centroid = (out.face_mask.sum(dim=1) * cols).sum(dim=1) / out.face_mask.sum(dim=(1, 2))
    shift_px = (centroid[1] - centroid[0]).item()
    assert shift_px == pytest.approx(0.06 * 128 / 2, abs=0.7)


def test_mismatched_state_lengths_are_rejected():
    with pytest.raises(ValueError, match="share T"):
        render_frames(IDENT, torch.zeros(3), torch.zeros(2, 4), torch.zeros(3), 64)
