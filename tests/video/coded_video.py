"""A test video whose frames carry their own index (8 black/white stripes = 8 bits), robust to H.264."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from talkgen_core.video.writer import Mp4Writer

SIZE = 64
BITS = 8


def coded_frame(index: int) -> torch.Tensor:
    """[3, 64, 64] in [-1, 1]: stripe b is white when bit b of the index is set."""
    frame = -torch.ones(3, SIZE, SIZE)
    for bit in range(BITS):
        if index >> bit & 1:
            frame[:, bit * 8 : bit * 8 + 8] = 1.0
    return frame


def decode_index(image) -> int:
    """Index from a coded frame: [H, W, 3] uint8 array or [3, H, W] tensor in [-1, 1] (any square size)."""
    if isinstance(image, np.ndarray):
        pixels = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0
    else:
        pixels = image.float()
    rows = pixels.mean(dim=(0, 2))  # [H]
    stripe = rows.shape[0] // BITS
    return sum(1 << b for b in range(BITS) if rows[b * stripe : (b + 1) * stripe].mean() > 0)


def write_coded_video(path: Path, frames: int, fps: float, audio_seconds: float | None = None) -> Path:
    audio = None
    if audio_seconds is not None:
        audio = 0.2 * torch.sin(torch.arange(int(audio_seconds * 16000)) / 16000 * 2 * torch.pi * 300)
    writer = Mp4Writer(path, fps=fps, audio=audio, crf=12, preset="ultrafast")
    for start in range(0, frames, 32):
        writer.write(torch.stack([coded_frame(i) for i in range(start, min(frames, start + 32))]))
    writer.close()
    return path
