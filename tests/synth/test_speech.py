import numpy as np
import torch

from talkgen_core.synth.envelope import frame_rms
from talkgen_core.synth.speech import SAMPLE_RATE, synthesize_speech

SECONDS = 6


def test_deterministic_per_seed_and_seeds_differ():
    a = synthesize_speech(11, SECONDS * SAMPLE_RATE)
    assert torch.equal(a, synthesize_speech(11, SECONDS * SAMPLE_RATE))
    b = synthesize_speech(12, SECONDS * SAMPLE_RATE)
    assert not torch.allclose(a, b)


def test_length_level_and_range():
    audio = synthesize_speech(3, 12345)
    assert audio.shape == (12345,) and audio.dtype == torch.float32
    assert bool(torch.isfinite(audio).all())
    assert audio.abs().max().item() <= 0.99
    rms_db = 20 * np.log10(audio.pow(2).mean().sqrt().item())
    assert -32.0 < rms_db < -16.0  # pauses pull the overall level below the -20 dBFS speech level


def test_has_pauses_and_syllable_rate_modulation():
    for seed in (1, 2, 3):
        audio = synthesize_speech(seed, SECONDS * SAMPLE_RATE)
        env = frame_rms(audio, SAMPLE_RATE, 100.0).numpy()  # 10 ms envelope
        loud = np.percentile(env, 95)
        assert (env < 0.05 * loud).mean() > 0.05  # some silence
        assert (env > 0.3 * loud).mean() > 0.3  # mostly speaking
        spectrum = np.abs(np.fft.rfft(env - env.mean()))
        freqs = np.fft.rfftfreq(env.shape[0], 0.01)
        peak = freqs[1:][np.argmax(spectrum[1:])]
        assert 1.5 <= peak <= 8.0, peak  # syllables come at a speech-like rate


def test_voiced_energy_sits_in_the_speech_band():
    audio = synthesize_speech(5, SECONDS * SAMPLE_RATE).numpy()
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.shape[0], 1.0 / SAMPLE_RATE)
    share = power[(freqs > 80) & (freqs < 4000)].sum() / power.sum()
    assert share > 0.8
