import pytest
import torch

from talkgen_core.conditioning.speaker_masks import default_boxes, fit_masks, masks_from_boxes, parse_boxes


def test_parse_boxes_reads_percent_boxes():
    assert parse_boxes("0,0,50,100; 50,10,100,90") == [(0, 0, 50, 100), (50, 10, 100, 90)]


@pytest.mark.parametrize("text", ["1,2,3", "10,0,5,100", "a,b,c,d", "0,0,50,120"])
def test_parse_boxes_refuses_bad_boxes(text):
    with pytest.raises(ValueError, match="speaker box 1"):
        parse_boxes(text)


def test_default_two_speakers_are_inset_halves():
    masks = masks_from_boxes(default_boxes(2), height=100, width=200)
    assert masks.shape == (2, 100, 200)
    # speaker 1: columns 10..90 (5 % of 200 = 10 px inset inside the left half), rows 5..95
    assert masks[0, 50, 9] == 0 and masks[0, 50, 10] == 1 and masks[0, 50, 89] == 1 and masks[0, 50, 90] == 0
    assert masks[1, 50, 110] == 1 and masks[1, 50, 109] == 0
    assert masks[0, 4, 50] == 0 and masks[0, 5, 50] == 1
    assert (masks[0] * masks[1]).sum() == 0


def test_fit_masks_resizes_nearest_and_binarises():
    painted = torch.zeros(2, 8, 8)
    painted[0, :, :4] = 0.9
    painted[1, :, 4:] = 0.7
    fitted = fit_masks(painted, 16, 32)
    assert fitted.shape == (2, 16, 32)
    assert fitted[0, :, :16].min() == 1 and fitted[0, :, 16:].max() == 0
    assert fitted[1, :, 16:].min() == 1


def test_fit_masks_names_empty_speaker():
    painted = torch.zeros(2, 8, 8)
    painted[0] = 1
    with pytest.raises(ValueError, match=r"\[2\] are empty"):
        fit_masks(painted, 8, 8)


def test_fit_masks_crops_like_the_reference_image():
    # a 2:1 painted mask fitted to a square video keeps the centre, as the image's centre crop does
    painted = torch.zeros(1, 10, 20)
    painted[0, :, 5:10] = 1  # columns 5..9 of 20 -> after cover-scaling to 10x20 and cropping cols 5..14
    fitted = fit_masks(painted, 10, 10)
    assert fitted[0, 0].tolist() == [1.0] * 5 + [0.0] * 5


def test_speaker_masks_prefers_painted_then_boxes_then_default():
    from talkgen_core.conditioning.speaker_masks import speaker_masks

    default = speaker_masks(2).at_size(20, 40)
    assert default[0, 10, 5] == 1 and default[1, 10, 25] == 1
    boxed = speaker_masks(2, boxes="0,0,25,100; 75,0,100,100", strengths="1, 0.5")
    assert boxed.at_size(20, 40)[1, :, 30:].min() == 1 and boxed.strengths.tolist() == [1.0, 0.5]
    painted = torch.zeros(2, 4, 4)
    painted[0, :2] = 1
    painted[1, 2:] = 1
    assert speaker_masks(2, masks=painted).at_size(8, 8)[1, 4:].min() == 1
    with pytest.raises(ValueError, match="one mask per speaker"):
        speaker_masks(3, masks=painted)
    with pytest.raises(ValueError, match="2 values for 3 speakers"):
        speaker_masks(3, strengths="1, 2")
