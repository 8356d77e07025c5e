"""Tiny input files for end-to-end tests: a syllable-like tone and a block face."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLE_RATE = 16000


def write_gated_tone(path: Path, seconds: float = 1.0, hz: float = 180.0) -> Path:
    """A 16 kHz mono tone switched on and off 3 times a second (speech-like bursts), as 16-bit PCM."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * hz * t) * (np.sin(2 * np.pi * 3 * t) > 0) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SAMPLE_RATE), w.writeframes(samples.tobytes())
    return path


def write_block_face(path: Path) -> Path:
    """A 40x48 RGB image: a skin-coloured block on a blue background."""
    image = np.full((48, 40, 3), (60, 90, 140), np.uint8)
    image[12:36, 10:30] = (220, 180, 150)
    Image.fromarray(image).save(path)
    return path
