"""A speech-like audio generator: voiced syllables with formants, consonant noise, pauses, intonation.

Not intelligible speech, but it has the structure a lip-sync model needs to learn from: syllable-rate
amplitude modulation (3-7 Hz), phrase pauses, a pitch contour with declination and accents, vowel formants
that glide between syllables, and fricative/plosive noise at syllable onsets.

Voiced sound is made by additive synthesis: harmonics of a time-varying f0, each weighted by a cascade of
three formant resonances evaluated at the harmonic's frequency (plus a glottal spectral tilt). Control
parameters live on a 5 ms grid and are linearly interpolated to the sample rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SAMPLE_RATE = 16000
CONTROL_HOP = 80  # samples per control step (5 ms at 16 kHz)

# (F1, F2, F3) in Hz for an adult voice; scaled per speaker by a vocal-tract factor.
VOWEL_FORMANTS: tuple[tuple[float, float, float], ...] = (
    (730.0, 1090.0, 2440.0),  # a
    (530.0, 1840.0, 2480.0),  # e
    (270.0, 2290.0, 3010.0),  # i
    (570.0, 840.0, 2410.0),  # o
    (300.0, 870.0, 2240.0),  # u
    (660.0, 1720.0, 2410.0),  # ae
    (500.0, 1500.0, 2500.0),  # schwa
)
FORMANT_BANDWIDTHS = (80.0, 110.0, 160.0)


@dataclass(frozen=True)
class SpeakerVoice:
    """Voice parameters drawn once per utterance."""

    f0_hz: float  # median pitch
    pitch_range: float  # relative size of accents
    syllables_per_second: float
    tract_scale: float  # formant frequency factor (smaller tract -> higher formants)
    breathiness: float  # aspiration noise level relative to voicing


def sample_voice(rng: np.random.Generator) -> SpeakerVoice:
    return SpeakerVoice(
        f0_hz=float(rng.uniform(95.0, 240.0)),
        pitch_range=float(rng.uniform(0.08, 0.25)),
        syllables_per_second=float(rng.uniform(3.0, 6.0)),
        tract_scale=float(rng.uniform(0.9, 1.2)),
        breathiness=float(rng.uniform(0.01, 0.05)),
    )


@dataclass
class _Tracks:
    """Control tracks on the 5 ms grid, filled syllable by syllable."""

    voiced_gain: np.ndarray  # [N]
    noise_gain: np.ndarray  # [N]
    noise_centre_hz: np.ndarray  # [N]
    f0: np.ndarray  # [N]
    formants: np.ndarray  # [N, 3]


def _raised_cosine_envelope(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n)
    a, r = min(attack, n // 2), min(release, n // 2)
    if a > 0:
        env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, a))
    if r > 0:
        env[n - r :] = 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, r))
    return env


def _plan_utterance(rng: np.random.Generator, voice: SpeakerVoice, n_ctrl: int) -> _Tracks:
    """Lay out phrases of syllables and pauses over ``n_ctrl`` control steps."""
    ctrl_rate = SAMPLE_RATE / CONTROL_HOP
    tracks = _Tracks(
        voiced_gain=np.zeros(n_ctrl),
        noise_gain=np.zeros(n_ctrl),
        noise_centre_hz=np.full(n_ctrl, 4000.0),
        f0=np.full(n_ctrl, voice.f0_hz),
        formants=np.tile(np.array(VOWEL_FORMANTS[-1]) * voice.tract_scale, (n_ctrl, 1)),
    )
    pos = int(rng.uniform(0.05, 0.4) * ctrl_rate)
    previous_formants = np.array(VOWEL_FORMANTS[-1]) * voice.tract_scale
    while pos < n_ctrl:
        n_syllables = int(rng.integers(2, 9))
        phrase_start = pos
        phrase_len_est = n_syllables / voice.syllables_per_second * ctrl_rate
        for k in range(n_syllables):
            if pos >= n_ctrl:
                break
            rate = voice.syllables_per_second * rng.uniform(0.8, 1.25)
            syll_len = max(int(ctrl_rate / rate), 8)
            onset_kind = rng.choice(["none", "fricative", "plosive", "nasal"], p=[0.3, 0.3, 0.25, 0.15])
            onset_len = 0
            if onset_kind == "fricative":
                onset_len = int(rng.uniform(0.04, 0.09) * ctrl_rate)
                end = min(pos + onset_len, n_ctrl)
                tracks.noise_gain[pos:end] = rng.uniform(0.08, 0.2) * _raised_cosine_envelope(end - pos, 3, 3)
                tracks.noise_centre_hz[pos:end] = rng.uniform(2500.0, 6000.0)
            elif onset_kind == "plosive":
                closure = int(rng.uniform(0.03, 0.06) * ctrl_rate)
                burst = 3
                onset_len = closure + burst
                b0, b1 = min(pos + closure, n_ctrl), min(pos + onset_len, n_ctrl)
                tracks.noise_gain[b0:b1] = rng.uniform(0.15, 0.3)
                tracks.noise_centre_hz[b0:b1] = rng.uniform(1500.0, 4000.0)
            elif onset_kind == "nasal":
                onset_len = int(rng.uniform(0.04, 0.07) * ctrl_rate)
                end = min(pos + onset_len, n_ctrl)
                tracks.voiced_gain[pos:end] = 0.12
                tracks.formants[pos:end] = np.array([250.0, 1200.0, 2500.0]) * voice.tract_scale
            v0 = min(pos + onset_len, n_ctrl)
            v1 = min(pos + syll_len, n_ctrl)
            if v1 > v0:
                stress = rng.uniform(0.45, 1.0)
                vowel = np.array(VOWEL_FORMANTS[int(rng.integers(len(VOWEL_FORMANTS)))]) * voice.tract_scale
                vowel = vowel * rng.uniform(0.95, 1.05, 3)
                n = v1 - v0
                glide = np.clip(np.arange(n) / max(0.3 * n, 1.0), 0.0, 1.0)[:, None]
                tracks.formants[v0:v1] = previous_formants * (1.0 - glide) + vowel * glide
                previous_formants = vowel
                # A hump per syllable, so loudness (and the mouth) opens and closes at the syllable rate.
                hump = np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 0.8
                tracks.voiced_gain[v0:v1] = stress * hump
                # Pitch: phrase declination plus an accent bump on stressed syllables.
                frac = (np.arange(v0, v1) - phrase_start) / max(phrase_len_est, 1.0)
                accent = voice.pitch_range * (stress - 0.6) * np.sin(np.linspace(0.0, np.pi, n))
                tracks.f0[v0:v1] = voice.f0_hz * (1.08 - 0.16 * frac + accent)
            pos += syll_len
            if k < n_syllables - 1 and rng.random() < 0.15:
                pos += int(rng.uniform(0.02, 0.08) * ctrl_rate)  # short hesitation inside a phrase
        pos += int(rng.uniform(0.15, 0.6) * ctrl_rate)  # pause between phrases
    return tracks


def _interp(track: np.ndarray, n_samples: int) -> np.ndarray:
    """Control-rate track [N] -> per-sample [S] by linear interpolation between step centres."""
    centres = (np.arange(track.shape[0]) + 0.5) * CONTROL_HOP
    return np.interp(np.arange(n_samples) + 0.5, centres, track)


def _formant_gain(freq: np.ndarray, formants: np.ndarray) -> np.ndarray:
    """Cascade resonator magnitude (unit gain at DC) at ``freq`` [..., K] for formants [..., 3]."""
    gain = np.ones_like(freq)
    for i, bw in enumerate(FORMANT_BANDWIDTHS):
        f_res = formants[..., i : i + 1]
        gain = gain * f_res**2 / np.sqrt((f_res**2 - freq**2) ** 2 + (bw * freq) ** 2)
    return gain


def _voiced(tracks: _Tracks, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    jitter = 1.0 + 0.004 * np.convolve(rng.normal(size=tracks.f0.shape[0]), np.ones(5) / 5, mode="same")
    f0 = _interp(tracks.f0 * jitter, n_samples)
    gain = _interp(tracks.voiced_gain, n_samples)
    phase = 2.0 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    n_harm = int(7500.0 // f0.min())
    k = np.arange(1, n_harm + 1)
    # Harmonic amplitudes on the control grid, then interpolated (cheap and smooth).
    f_ctrl = tracks.f0[:, None] * k[None, :]
    amp_ctrl = _formant_gain(f_ctrl, tracks.formants) / k[None, :] ** 0.9
    amp_ctrl = np.where(f_ctrl < 7500.0, amp_ctrl, 0.0)
    out = np.zeros(n_samples)
    block = 4000
    centres = (np.arange(tracks.f0.shape[0]) + 0.5) * CONTROL_HOP
    for s0 in range(0, n_samples, block):
        s1 = min(s0 + block, n_samples)
        t = np.arange(s0, s1) + 0.5
        pos = np.clip(np.interp(t, centres, np.arange(centres.shape[0])), 0, centres.shape[0] - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, centres.shape[0] - 1)
        w = (pos - lo)[:, None]
        amps = amp_ctrl[lo] * (1.0 - w) + amp_ctrl[hi] * w  # [block, K]
        out[s0:s1] = (amps * np.sin(phase[s0:s1, None] * k[None, :])).sum(axis=1)
    return out * gain


def _bandpass_noise(
    rng: np.random.Generator, n_samples: int, centre_hz: float, width_hz: float
) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(size=n_samples))
    freqs = np.fft.rfftfreq(n_samples, 1.0 / SAMPLE_RATE)
    spectrum *= np.exp(-0.5 * ((freqs - centre_hz) / width_hz) ** 2)
    return np.fft.irfft(spectrum, n_samples)


def _noise(tracks: _Tracks, voice: SpeakerVoice, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Consonant noise (two fixed bands mixed by the centre track) plus breathy aspiration."""
    low = _bandpass_noise(rng, n_samples, 2500.0, 900.0)
    high = _bandpass_noise(rng, n_samples, 5500.0, 1200.0)
    for band in (low, high):
        band /= band.std() + 1e-12
    mix = np.clip((_interp(tracks.noise_centre_hz, n_samples) - 2500.0) / 3000.0, 0.0, 1.0)
    consonant = (low * (1.0 - mix) + high * mix) * _interp(tracks.noise_gain, n_samples)
    aspiration = _bandpass_noise(rng, n_samples, 1500.0, 1500.0)
    aspiration *= voice.breathiness / (aspiration.std() + 1e-12) * _interp(tracks.voiced_gain, n_samples)
    return consonant + aspiration


def synthesize_speech(seed: int, num_samples: int, rms_dbfs: float = -20.0) -> torch.Tensor:
    """Speech-like mono audio at 16 kHz: ``[num_samples]`` float32, active speech near ``rms_dbfs``.

    Deterministic in ``seed``. The level is set on the voiced part so that pauses stay quiet; a faint
    noise floor (-70 dBFS) keeps silences from being digitally zero.
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    rng = np.random.default_rng([seed, 0x5BEEC])
    voice = sample_voice(rng)
    n_ctrl = -(-num_samples // CONTROL_HOP) + 1
    tracks = _plan_utterance(rng, voice, n_ctrl)
    voiced = _voiced(tracks, num_samples, rng)
    sounding = np.abs(voiced) > 1e-6
    if sounding.any():
        voiced /= np.sqrt(np.mean(voiced[sounding] ** 2))
    signal = voiced + _noise(tracks, voice, num_samples, rng)
    active = _interp(tracks.voiced_gain, num_samples) > 0.2
    level = np.sqrt(np.mean(signal[active] ** 2)) if active.any() else np.sqrt(np.mean(signal**2)) + 1e-12
    signal *= 10.0 ** (rms_dbfs / 20.0) / level
    signal += rng.normal(0.0, 10.0 ** (-70.0 / 20.0), num_samples)
    peak = np.abs(signal).max()
    if peak > 0.99:
        signal *= 0.99 / peak
    return torch.from_numpy(signal.astype(np.float32))
