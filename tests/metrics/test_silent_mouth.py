import pytest
import torch

from talkgen_core.metrics.feature_boxes import feature_boxes
from talkgen_core.metrics.silent_mouth import lip_pixels, silent_frames, silent_mouth
from talkgen_core.synth import make_clip, render_reference, sample_identity
from talkgen_core.synth.layout import Placement
from talkgen_core.synth.palette import LIP_LINE_DARKEN


def test_silent_frames_keep_a_margin_from_sound():
    audio = torch.zeros(16000)  # 25 frames of 640 samples
    audio[640 * 10 : 640 * 12] = 0.5  # frames 10 and 11 sound
    silent = silent_frames(audio, 16000, 25.0, 25, margin=2)
    assert silent.tolist() == [t < 8 or t > 13 for t in range(25)]
    assert silent_frames(audio, 16000, 25.0, 25, margin=0).sum() == 23


@pytest.fixture(scope="module")
def speaking_clip():
    return make_clip(31, num_frames=200, size=64, identity=7)


def _lips(identity):
    return (identity.lip_rgb, tuple(c * LIP_LINE_DARKEN for c in identity.lip_rgb))


def test_rendered_clip_keeps_its_closed_mouth_in_pauses(speaking_clip):
    identity = speaking_clip.identity
    box = feature_boxes([(identity, speaking_clip.placement)], 64, 64)[0].closed_mouth
    reference = render_reference(identity, 64)
    result = silent_mouth(speaking_clip.frames, reference, speaking_clip.audio, 16000, 25.0, _lips(identity),
                          identity.skin_rgb, box)
    assert result.silent_frames > 10
    assert result.reference_lip_pixels > 8
    assert 0.8 < result.share < 1.2
    blank = speaking_clip.frames.clone()  # the mouth painted over with skin: a blank oval
    blank[:, :, box.top : box.bottom, box.left : box.right] = torch.tensor(
        [round(255 * c) for c in identity.skin_rgb], dtype=torch.uint8).view(3, 1, 1)
    assert lip_pixels(blank, _lips(identity), identity.skin_rgb, box).max() == 0
    gone = silent_mouth(blank, reference, speaking_clip.audio, 16000, 25.0, _lips(identity), identity.skin_rgb, box)
    assert gone.share == 0.0


def test_a_reference_without_lips_is_refused():
    identity = sample_identity(7)
    box = feature_boxes([(identity, Placement())], 64, 64)[0].closed_mouth
    grey = torch.full((3, 64, 64), 128, dtype=torch.uint8)
    with pytest.raises(ValueError, match="no lip pixels"):
        silent_mouth(grey[None], grey, torch.zeros(640), 16000, 25.0, _lips(identity), identity.skin_rgb, box)
