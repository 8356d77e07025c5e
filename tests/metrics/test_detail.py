import pytest
import torch
import torch.nn.functional as F

from talkgen_core.metrics.detail import detail_ratio, detail_rms, high_pass, luma
from talkgen_core.metrics.feature_boxes import feature_boxes
from talkgen_core.synth import render_reference, sample_identity
from talkgen_core.synth.layout import Placement
from talkgen_core.synth.render import neutral_track, render_scene


@pytest.fixture(scope="module")
def face():
    identity = sample_identity(7)
    reference = render_reference(identity, 64).float() / 127.5 - 1.0  # [3, H, W]
    return reference, feature_boxes([(identity, Placement())], 64, 64)[0]


def test_luma_and_high_pass_of_known_images():
    white = torch.ones(1, 3, 4, 4)
    assert torch.allclose(luma(white), torch.ones(1, 4, 4))
    assert luma(torch.full((3, 2, 2), 255, dtype=torch.uint8)).shape == (2, 2)
    assert high_pass(torch.full((5, 5), 0.3)).abs().max().item() < 1e-7  # flat: no detail
    dot = torch.zeros(5, 5)
    dot[2, 2] = 1.0
    assert high_pass(dot)[2, 2].item() == pytest.approx(8 / 9)


@pytest.mark.parametrize("region", ["box", "pixels"])
def test_reference_against_itself_is_one_and_blur_lowers_it(face, region):
    reference, boxes = face
    eyes = boxes.eyes.mask() if region == "box" else boxes.eye_pixels
    assert detail_ratio(reference[None], reference, eyes).tolist() == pytest.approx([1.0])
    blurred = F.avg_pool2d(F.pad(reference[None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    ratio = float(detail_ratio(blurred, reference, eyes)[0])
    assert 0.1 < ratio < 0.6
    flat, patch = reference[None].clone(), boxes.eyes.grown(1)  # a pixel more, so the patch's rim is outside
    flat[..., patch.top : patch.bottom, patch.left : patch.right] = 0.2  # eyes painted over
    assert float(detail_ratio(flat, reference, eyes)[0]) < 0.05


def test_eye_pixels_stencils_lie_inside_the_eye_mask():
    identity = sample_identity(7)  # a cropped fringe ends on the eye box's top rows
    scene = render_scene([neutral_track(identity)], 64, 64)
    boxes = feature_boxes([(identity, Placement())], 64, 64)[0]
    stencils = F.max_pool2d(boxes.eye_pixels.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0.5
    assert not (stencils & ~(scene.eye_mask[0, 0] > 0.5)).any()
    assert not (boxes.eye_pixels & ~boxes.eyes.mask()).any()
    assert 0.3 * boxes.eyes.mask().sum() < boxes.eye_pixels.sum() < boxes.eyes.mask().sum()


def test_detail_is_per_frame_and_checks_the_region(face):
    reference, boxes = face
    frames = torch.stack([reference, torch.zeros_like(reference)])
    rms = detail_rms(frames, boxes.eye_pixels)
    assert rms.shape == (2,) and rms[0] > 0.05 and rms[1] == 0.0
    with pytest.raises(ValueError, match="non-empty \\[H, W\\] = \\(64, 32\\) bool mask"):
        detail_rms(frames[..., :32], boxes.eye_pixels)
    with pytest.raises(ValueError, match="no detail in the region"):
        detail_ratio(frames, torch.zeros_like(reference), boxes.eye_pixels)
