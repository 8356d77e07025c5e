import pytest
import torch

from talkgen_core.metrics.regions import Box, erode, mask_box


def test_mask_box_bounds_the_pixels_above_the_threshold():
    mask = torch.zeros(10, 12)
    mask[2:5, 3:9] = 1.0
    mask[6, 1] = 0.4  # below the threshold: not in the box
    box = mask_box(mask)
    assert (box.top, box.bottom, box.left, box.right, box.height, box.width) == (2, 5, 3, 9, 10, 12)
    assert int(box.mask().sum()) == 3 * 6
    assert torch.equal(box.mask(), mask > 0.5)


def test_grown_box_is_clipped_to_the_frame():
    box = Box(1, 3, 8, 11, 10, 12).grown(2)
    assert (box.top, box.bottom, box.left, box.right) == (0, 5, 6, 12)


def test_empty_mask_and_bad_boxes_are_refused():
    with pytest.raises(ValueError, match="eye mask has no pixel"):
        mask_box(torch.zeros(4, 4), what="eye mask")
    with pytest.raises(ValueError, match="one \\[H, W\\]"):
        mask_box(torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="inside a 4 x 4 frame"):
        Box(0, 5, 0, 2, 4, 4)


def test_erode_shrinks_by_the_radius_and_keeps_the_frame_border():
    mask = torch.zeros(1, 9, 9, dtype=torch.bool)
    mask[0, 2:7, 2:7] = True
    assert torch.equal(erode(mask, 1)[0], Box(3, 6, 3, 6, 9, 9).mask())
    assert torch.equal(erode(mask, 0), mask)
    assert erode(torch.ones(1, 4, 4, dtype=torch.bool), 1).all()  # outside the frame counts as inside
