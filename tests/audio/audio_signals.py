"""Deterministic test signals and a writer that goes through the real FFmpeg binary (imageio-ffmpeg)."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
import numpy as np


def tone(seconds: float, sample_rate: int = 16000, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise_bursts(seconds: float, sample_rate: int = 16000, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """100 ms white-noise bursts every 300 ms, silence between them."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    x = (amp * rng.standard_normal(n)).astype(np.float32)
    t = np.arange(n) / sample_rate
    return np.where((t % 0.3) < 0.1, x, 0.0).astype(np.float32)


def speech_like(seconds: float, sample_rate: int = 16000, seed: int = 0, amp: float = 0.5) -> np.ndarray:
    """Voiced syllables: a harmonic source with gliding pitch shaped by three moving formants, 4 Hz
    syllable envelope with short pauses, plus faint breath noise."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    syllable = np.floor(t * 4).astype(int)
    vowels = rng.uniform([300, 900, 2200], [800, 1800, 3000], size=(syllable.max() + 1, 3))
    formants = vowels[syllable]  # [n, 3]
    x = np.zeros(n)
    for k in range(1, 25):
        fk = k * f0
        gain = sum(np.exp(-0.5 * ((fk - formants[:, j]) / 120.0) ** 2) for j in range(3)) / k ** 0.5
        x += gain * np.sin(k * phase)
    env = np.clip(np.sin(np.pi * (t * 4 % 1.0)), 0, None) ** 0.7
    env *= (syllable % 5 != 4)  # every fifth syllable is a pause
    x = x * env + 0.01 * rng.standard_normal(n) * env
    return (amp * x / np.abs(x).max()).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    """16-bit PCM wav; ``samples`` is [S] or [S, C] in [-1, 1]."""
    data = np.asarray(samples, dtype=np.float64)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((np.clip(data, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *args], check=True, timeout=60)


def encode_with_ffmpeg(src: Path, dst: Path, *codec_args: str) -> Path:
    ffmpeg("-i", str(src), *codec_args, str(dst))
    return dst


def mux_with_video(src_audio: Path, dst: Path, seconds: float, *codec_args: str) -> Path:
    """A small video (grey frames, 25 fps) with ``src_audio`` as its audio track."""
    ffmpeg("-f", "lavfi", "-i", f"color=c=gray:s=64x64:r=25:d={seconds}", "-i", str(src_audio),
           "-c:v", "mpeg4", *codec_args, "-shortest", str(dst))
    return dst
