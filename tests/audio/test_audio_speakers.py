"""Speakers: para / add / timeline placement, frame-exact turn-taking, mix, per-speaker encoding, null audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from audio.audio_signals import speech_like, tone

from talkgen_core.audio import AudioInputError, arrange_speakers, encode_speakers, null_speech_features

SR = 16000


def frame_energy(track: torch.Tensor, fps: float) -> torch.Tensor:
    """Sum of squares per video frame (frame k = samples [k * SR / fps, (k + 1) * SR / fps))."""
    edges = [int(np.ceil(k * SR / fps - 1e-9)) for k in range(int(track.numel() * fps / SR) + 1)]
    return torch.tensor([float((track[a:b] ** 2).sum()) for a, b in zip(edges, edges[1:])])


def test_para_pads_shorter_tracks_with_silence():
    a, b = tone(2.0, freq=200), tone(1.5, freq=300)
    layout = arrange_speakers([a, b], "para")
    assert layout.tracks.shape == (2, 32000) and layout.starts == (0, 0)
    assert float(layout.tracks[1, 24000:].abs().max()) == 0.0
    torch.testing.assert_close(layout.mix, layout.tracks.sum(0))


def test_add_is_the_official_sequence_without_fps():
    a, b = tone(1.01, freq=200), tone(0.7, freq=300)
    layout = arrange_speakers([a, b], "add")
    n1, n2 = a.size, b.size
    assert layout.starts == (0, n1) and layout.num_samples == n1 + n2
    torch.testing.assert_close(layout.tracks[0, :n1], torch.from_numpy(a))
    assert float(layout.tracks[0, n1:].abs().max()) == 0.0
    assert float(layout.tracks[1, :n1].abs().max()) == 0.0
    torch.testing.assert_close(layout.tracks[1, n1:], torch.from_numpy(b))


@pytest.mark.parametrize("fps", [25.0, 24.0, 30000 / 1001])
def test_add_turns_start_exactly_on_a_frame(fps):
    a, b, c = speech_like(1.013, seed=1), speech_like(0.77, seed=2), speech_like(0.5, seed=3)
    layout = arrange_speakers([a, b, c], "add", fps=fps)
    frames = layout.start_frames(fps)
    assert frames[0] == 0
    assert frames[1] == int(np.ceil(a.size * fps / SR))  # first frame boundary after speaker 1 ends
    for k, f in enumerate(frames):
        energy = frame_energy(layout.tracks[k], fps)
        assert float(energy[:f].sum()) == 0.0  # silent in every frame before its turn
        assert float(energy[f]) > 0.0  # speaking in the first frame of its turn
        start = layout.starts[k]
        assert abs(start - f * SR / fps) < 1.0  # the turn begins on the frame's first sample
    assert frames[2] >= frames[1] + int(np.floor(b.size * fps / SR))


def test_timeline_none_speaker_and_any_number_of_speakers():
    tracks = [tone(1.0, freq=200), None, tone(0.5, freq=400), tone(0.25, freq=500)]
    layout = arrange_speakers(tracks, "timeline", starts_seconds=[0.0, 0.0, 0.8, 2.0])
    assert layout.tracks.shape == (4, int(2.25 * SR))
    assert layout.starts == (0, 0, 12800, 32000) and layout.lengths == (16000, 0, 8000, 4000)
    assert float(layout.tracks[1].abs().max()) == 0.0
    assert float(layout.tracks[2, :12800].abs().max()) == 0.0
    assert layout.start_frames(25.0) == (0, 0, 20, 50)


def test_loud_overlapping_mix_is_soft_limited_not_clipped():
    layout = arrange_speakers([tone(1.0, amp=0.8), tone(1.0, amp=0.8)], "para")
    assert float(layout.tracks.sum(0).abs().max()) > 1.5
    assert float(layout.mix.abs().max()) < 1.0


def test_bad_layouts_are_named_errors():
    with pytest.raises(AudioInputError, match="no speaker tracks"):
        arrange_speakers([], "para")
    with pytest.raises(AudioInputError, match="every speaker track is silent"):
        arrange_speakers([None, None], "add")
    with pytest.raises(AudioInputError, match="one start time per track"):
        arrange_speakers([tone(1.0), tone(1.0)], "timeline", starts_seconds=[0.0])
    with pytest.raises(AudioInputError, match="unknown speaker mode 'sum'"):
        arrange_speakers([tone(1.0)], "sum")  # type: ignore[arg-type]


def test_encode_speakers_separately_with_silent_speaker_and_null_audio(tiny_encoder):
    layout = arrange_speakers([speech_like(1.2, seed=4), None], "para")
    feats = encode_speakers(tiny_encoder, layout, fps=25.0)
    assert feats.shape == (2, 30, 4, 32) and torch.isfinite(feats).all()
    silent = feats[1, 8:-8]
    assert float((silent - silent[0]).abs().max()) < 1e-4  # silence: features constant in time
    assert float((feats[0] - feats[1]).abs().max()) > 0.1
    null = null_speech_features(feats)
    assert null.shape == (30, 4, 32) and float(null.abs().max()) == 0.0
