import torch

from talkgen_core.metrics.feature_boxes import feature_boxes
from talkgen_core.synth import render_reference, sample_identity
from talkgen_core.synth.layout import Placement, columns_placements
from talkgen_core.synth.palette import EYE_WHITE_RGB


def test_boxes_hold_their_features_and_follow_the_placement():
    face = sample_identity(7)
    centred = feature_boxes([(face, Placement())], 64, 64)[0]
    assert centred.eyes.bottom <= centred.mouth.top + 2 and centred.closed_mouth.top >= centred.mouth.top
    assert centred.mouth.bottom - centred.closed_mouth.bottom >= 3  # room for the jaw to drop
    image = render_reference(face, 64)
    whites = (image.float() / 255 - torch.tensor(EYE_WHITE_RGB).view(3, 1, 1)).abs().amax(dim=0) < 0.05
    assert whites.any() and not (whites & ~centred.eyes.mask()).any()  # every eye-white pixel is in the box
    moved = feature_boxes([(face, Placement(0.2, -0.15, 0.75))], 64, 64)[0]
    assert moved.mouth.left > centred.mouth.left and moved.mouth.top < centred.mouth.top
    assert (moved.mouth.right - moved.mouth.left) < (centred.mouth.right - centred.mouth.left)


def test_two_columns_match_two_portraits_side_by_side():
    people = [sample_identity(8), sample_identity(9)]
    pair = feature_boxes(list(zip(people, columns_placements(2, 2.0))), 64, 128)
    for index, person in enumerate(people):
        alone = feature_boxes([(person, Placement())], 64, 64)[0]
        assert (pair[index].mouth.top, pair[index].mouth.left - 64 * index) == (alone.mouth.top, alone.mouth.left)
        assert (pair[index].eyes.bottom, pair[index].eyes.right - 64 * index) == (alone.eyes.bottom, alone.eyes.right)
