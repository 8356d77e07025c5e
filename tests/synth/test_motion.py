import numpy as np
import pytest
import torch

from talkgen_core.synth.envelope import frame_rms
from talkgen_core.synth.motion import (
    POSE_LIMIT,
    blink_track,
    head_pose_track,
    mouth_opening_from_envelope,
)


def test_frame_rms_uses_the_samples_of_each_frame():
    audio = torch.zeros(16000)
    audio[640 * 3 : 640 * 4] = 0.5  # frame 3 at 25 fps, 16 kHz
    rms = frame_rms(audio, 16000, 25.0)
    assert rms.shape == (25,)
    assert rms[3].item() == pytest.approx(0.5)
    assert rms.sum().item() == pytest.approx(0.5)


@pytest.mark.parametrize("lead", [0.0, 1.0, 3.0])
def test_mouth_leads_the_envelope_by_the_requested_frames(lead):
    env = torch.zeros(200)
    env[100:] = 1.0  # a loud stretch sets the loud level, so the test bump below is not clipped
    env[30] = 0.5
    opening = mouth_opening_from_envelope(env, lead)
    assert int(torch.argmax(opening[:60])) == 30 - int(lead)
    assert float(opening.min()) >= 0.0 and float(opening.max()) <= 1.0


def test_silence_keeps_the_mouth_closed():
    assert torch.equal(mouth_opening_from_envelope(torch.zeros(40)), torch.zeros(40))


def test_blinks_are_short_and_occasional():
    blink = blink_track(np.random.default_rng(0), 500, 25.0)  # 20 s
    closed = (blink > 0.5).numpy()
    starts = np.flatnonzero(np.diff(closed.astype(int)) == 1)
    assert 2 <= starts.size <= 15
    assert closed.mean() < 0.1


def test_head_pose_stays_bounded_and_nods_with_speech():
    rng = np.random.default_rng(4)
    energy = torch.from_numpy((np.sin(np.arange(500) / 25.0 * 2 * np.pi * 0.5) > 0).astype(np.float32))
    pose = head_pose_track(rng, energy, 25.0)
    assert pose.shape == (500, 4)
    assert bool((pose.abs() <= torch.tensor(POSE_LIMIT)).all())
    assert pose.std(dim=0).min().item() > 1e-3  # every axis moves
    dy_corr = np.corrcoef(pose[:, 1].numpy(), energy.numpy())[0, 1]
    assert dy_corr > 0.1
