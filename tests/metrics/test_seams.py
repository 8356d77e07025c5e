import pytest
import torch

from talkgen_core.metrics.seams import frame_differences, seam_ratio


def test_smooth_video_has_seam_ratio_near_one(talking_clip):
    r = seam_ratio(talking_clip.frames, [50, 100, 150])
    assert 0.4 < r.ratio < 2.0
    assert r.differences.shape == (199,)


def test_injected_jump_gives_a_large_ratio(talking_clip):
    frames = talking_clip.frames_float().clone()
    frames[100:] = (frames[100:] + 0.15).clamp(-1.0, 1.0)  # a brightness step at the chunk start
    r = seam_ratio(frames, [50, 100, 150])
    assert r.ratio > 5.0
    smooth = seam_ratio(talking_clip.frames, [50, 100, 150])
    assert r.boundary_mean > smooth.boundary_mean


def test_differences_and_validation():
    frames = torch.zeros(4, 3, 2, 2)
    frames[2:] = 0.5  # float in [-1, 1]: a step of 0.25 in [0, 1] units
    assert frame_differences(frames).tolist() == pytest.approx([0.0, 0.25, 0.0])
    with pytest.raises(ValueError):
        seam_ratio(frames, [])
    with pytest.raises(ValueError):
        seam_ratio(frames, [4])
