import pytest
import torch

from talkgen_core.metrics.feature_boxes import feature_boxes
from talkgen_core.metrics.lipsync import correlation_near, lip_sync, measure_mouth_opening
from talkgen_core.synth import make_clip
from talkgen_core.synth.layout import Placement


@pytest.fixture(scope="module")
def moved_clip():
    """The example face at 75 %, right and up, its mouth in step with the audio (no lead)."""
    return make_clip(23, num_frames=200, size=64, identity=7, placement=Placement(0.2, -0.15, 0.75), lead_frames=0.0)


def test_true_mouth_region_gives_sync_at_lag_zero(moved_clip):
    box = feature_boxes([(moved_clip.identity, moved_clip.placement)], 64, 64)[0].mouth
    r = lip_sync(moved_clip.frames, moved_clip.audio, 16000, 25.0, region=box.mask())
    assert r.best_lag == 0 and r.peak_correlation > 0.9
    assert correlation_near(r) == pytest.approx(r.peak_correlation)


def test_a_region_without_the_mouth_sees_nothing(moved_clip):
    elsewhere = torch.zeros(64, 64, dtype=torch.bool)
    elsewhere[:, :16] = True
    assert measure_mouth_opening(moved_clip.frames, elsewhere).abs().max() == 0
    with pytest.raises(ValueError, match="non-empty"):
        measure_mouth_opening(moved_clip.frames, torch.zeros(64, 64, dtype=torch.bool))


def test_correlation_near_takes_the_best_lag_in_the_band():
    clip = make_clip(24, num_frames=100, size=64)
    r = lip_sync(clip.frames, clip.audio, 16000, 25.0)
    band = r.correlations[(r.lags.abs() <= 2)].max().item()
    assert correlation_near(r, 0, 2) == pytest.approx(band)
    with pytest.raises(ValueError, match="outside the measured lags"):
        correlation_near(r, 40, 1)
