"""Loudness normalisation: on target for tones, noise bursts and speech; silence never amplified; no clipping."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
import torch
from audio.audio_signals import encode_with_ffmpeg, noise_bursts, speech_like, tone, write_wav

from talkgen_core.audio import AudioInputError, integrated_loudness, load_audio, normalize_loudness
from talkgen_core.audio.loudness import soft_limit


def independent_lufs(x: np.ndarray, rate: int = 16000) -> float:
    return pyloudnorm.Meter(rate).integrated_loudness(np.asarray(x, dtype=np.float64))


@pytest.mark.parametrize("signal", ["tone", "noise_bursts", "speech_like"])
@pytest.mark.parametrize("target", [-23.0, -16.0])
def test_normalised_loudness_within_half_a_lu(signal, target):
    x = {"tone": tone(4.0, amp=0.05), "noise_bursts": noise_bursts(4.0, seed=1),
         "speech_like": speech_like(4.0, seed=2, amp=0.9)}[signal]
    y = load_audio({"waveform": torch.from_numpy(x)[None, None], "sample_rate": 16000}, target_lufs=target).numpy()
    assert abs(independent_lufs(y) - target) < 0.5
    assert np.abs(y).max() < 1.0


def test_mp3_file_normalised_through_real_decoder(tmp_path):
    x = speech_like(5.0, 48000, seed=5, amp=0.2)
    write_wav(tmp_path / "s.wav", np.stack([x, x], 1), 48000)
    encode_with_ffmpeg(tmp_path / "s.wav", tmp_path / "s.mp3", "-b:a", "160k")
    y = load_audio(tmp_path / "s.mp3").numpy()
    assert abs(independent_lufs(y) + 23.0) < 0.5
    before = independent_lufs(load_audio(tmp_path / "s.mp3", target_lufs=None).numpy())
    assert abs(before - (-23.0)) > 3.0  # the step did real work


def test_silence_and_near_silence_are_not_amplified():
    silent = np.zeros(32000, np.float32)
    out = normalize_loudness(silent, 16000, -23.0)
    assert out.skipped_reason is not None and out.gain_db == 0.0 and np.abs(out.samples).max() == 0.0
    hiss = (1e-5 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)  # about -97 LUFS
    assert integrated_loudness(hiss, 16000) < -70
    out = normalize_loudness(hiss, 16000, -23.0)
    assert out.gain_db == 0.0
    np.testing.assert_array_equal(out.samples, hiss)


def test_clip_shorter_than_a_loudness_block_is_returned_unchanged():
    x = tone(0.3, amp=0.01)
    out = normalize_loudness(x, 16000, -23.0)
    assert math.isnan(out.measured_lufs) and "block" in out.skipped_reason
    np.testing.assert_array_equal(out.samples, x)


def test_peaky_signal_is_soft_limited_not_clipped():
    # quiet tone plus sparse clicks: reaching -16 LUFS needs ~ +24 dB, pushing the clicks far past 1.0
    x = tone(4.0, amp=0.02)
    x[::4000] = 0.5
    out = normalize_loudness(x, 16000, -16.0)
    assert out.limited
    assert np.abs(out.samples).max() < 1.0
    assert abs(independent_lufs(out.samples) + 16.0) < 0.5


def test_soft_limiter_is_identity_below_knee_and_monotonic():
    x = np.linspace(-3, 3, 6001, dtype=np.float32)
    y = soft_limit(x)
    below = np.abs(x) <= 0.9
    np.testing.assert_array_equal(y[below], x[below])
    assert np.all(np.diff(y) >= 0) and np.abs(y).max() < 1.0
    knee_region = np.abs(x) < 1.2
    assert np.all(np.diff(y[knee_region]) > 0)  # strictly increasing until float32 saturation


def test_bad_target_is_a_named_error():
    with pytest.raises(AudioInputError, match="target loudness 5.0"):
        normalize_loudness(tone(1.0), 16000, 5.0)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_measurement_equals_pyloudnorm_across_filter_blocks_and_slices(rate):
    from talkgen_core.audio.loudness import block_powers, gated_loudness

    x = speech_like(3.3, rate, seed=3, amp=0.3)  # 3.3 s: neither the slices nor the 128-sample blocks divide it
    reference = independent_lufs(x, rate)
    assert abs(integrated_loudness(x, rate) - reference) < 1e-9
    for slice_samples in (1000, 4096 + 17):  # the filter state is carried across slices and partial blocks
        assert abs(gated_loudness(block_powers(x, rate, slice_samples)) - reference) < 1e-9


def test_k_weighting_filter_equals_the_direct_recurrence_with_state_carried():
    from talkgen_core.audio.kweighting import BlockFilter, k_weighting

    x = np.random.default_rng(4).standard_normal(1000)
    for f in k_weighting(16000):
        direct, s1, s2 = np.empty_like(x), 0.0, 0.0  # transposed direct form II, one sample at a time
        for n, v in enumerate(x):
            out = f.b0 * v + s1
            s1, s2 = f.b1 * v - f.a1 * out + s2, f.b2 * v - f.a2 * out
            direct[n] = out
        stage = BlockFilter(f, block=64)
        first, state = stage(x[:300], np.zeros(2))  # 4 full blocks + a partial one, then the rest
        second, state = stage(x[300:], state)
        np.testing.assert_allclose(np.concatenate([first, second]), direct, rtol=0, atol=1e-12)
        np.testing.assert_allclose(state, [s1, s2], rtol=0, atol=1e-12)
        assert np.abs(direct).max() > 1.0


def test_measuring_loudness_imports_neither_scipy_nor_pyloudnorm():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from talkgen_core.audio.loudness import integrated_loudness; "
            "integrated_loudness(np.ones(16000, np.float32) * 0.1, 16000); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'pyloudnorm'}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
