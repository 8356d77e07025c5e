import pytest
import torch

from talkgen_core.metrics.lipsync import lagged_correlations, lip_sync
from talkgen_core.synth import make_clip


def _shift_video(frames: torch.Tensor, k: int) -> torch.Tensor:
    """Delay the video by k frames (k < 0: advance), repeating the edge frame."""
    idx = (torch.arange(frames.shape[0]) - k).clamp(0, frames.shape[0] - 1)
    return frames[idx]


def test_ground_truth_clip_is_in_sync_at_its_lead(talking_clip):
    r = lip_sync(talking_clip.frames, talking_clip.audio, talking_clip.sample_rate, talking_clip.fps)
    assert r.best_lag == -round(talking_clip.lead_frames)
    assert r.peak_correlation > 0.8
    assert r.confidence > 0.5
    assert r.lags.tolist() == list(range(-15, 16))


@pytest.mark.parametrize("lead", [0, 3])
def test_recovers_the_rendered_lead(lead):
    clip = make_clip(22, num_frames=150, size=64, lead_frames=float(lead))
    r = lip_sync(clip.frames, clip.audio, clip.sample_rate, clip.fps)
    assert abs(r.best_lag - (-lead)) <= 1


@pytest.mark.parametrize("delay", [-6, 5, 12])
def test_recovers_a_known_shift_of_the_video(talking_clip, delay):
    frames = _shift_video(talking_clip.frames, delay)
    r = lip_sync(frames, talking_clip.audio, talking_clip.sample_rate, talking_clip.fps)
    assert abs(r.best_lag - (delay - round(talking_clip.lead_frames))) <= 1


def test_unrelated_audio_gives_low_confidence(talking_clip):
    other = make_clip(99, num_frames=200, size=64).audio
    synced = lip_sync(talking_clip.frames, talking_clip.audio, 16000, 25.0)
    unrelated = lip_sync(talking_clip.frames, other, 16000, 25.0)
    assert unrelated.peak_correlation < 0.5
    assert unrelated.confidence < synced.confidence / 2


def test_lagged_correlation_sign_convention():
    a = torch.randn(100, generator=torch.Generator().manual_seed(0))
    video = torch.roll(a, 4)  # video[t] = a[t - 4]: the video is 4 frames late
    lags, corr = lagged_correlations(video, a, 10)
    assert int(lags[torch.argmax(corr)]) == 4
    assert corr.max().item() == pytest.approx(1.0, abs=1e-6)


def test_a_still_mouth_is_flagged(talking_clip):
    still = talking_clip.frames[:1].expand(50, -1, -1, -1)
    r = lip_sync(still, talking_clip.audio[: 50 * 640], 16000, 25.0)
    assert r.opening_std == 0.0
    assert lip_sync(talking_clip.frames, talking_clip.audio, 16000, 25.0).opening_std > 1e-3
