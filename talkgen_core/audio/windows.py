"""Per-video-frame audio windows for the DiT's audio adapter, selected by absolute frame index.

Each video frame f gets the features of frames f-2 .. f+2 (``WINDOW_OFFSETS``); indices before the
first frame repeat frame 0. Chunks are cut by absolute frame index, so a chunk's audio never drifts
against the video however many chunks came before.

Tail, as the official streaming sampler does it: when a chunk [start, start + length) runs past the
T audio frames, the features are extended by a time-reversed copy of their last
``start + length - T + 3`` frames (the last frame first), and indices past the extension repeat its last
frame. The ``start + length - T`` frames beyond the audio are generated and must be trimmed
(``ChunkAudioWindows.trim_frames``). Where the audio is shorter than the reflection needs (the official
code refuses such short tracks), the reflection is repeated back and forth until it is long enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

WINDOW_OFFSETS = (-2, -1, 0, 1, 2)
TAIL_EXTRA_FRAMES = 3  # the official extension reaches 3 frames past the chunk end


@dataclass(frozen=True)
class ChunkAudioWindows:
    windows: torch.Tensor  # [length, 5, L, D] (or [P, length, 5, L, D] for several speakers)
    audio_frames: int  # frames of the chunk that lie inside the audio
    trim_frames: int  # frames at the chunk's end that lie beyond the audio: drop them from the video


def _check_range(num_audio_frames: int, start: int, length: int) -> None:
    if num_audio_frames < 1:
        raise ValueError("no audio features to window (zero frames); encode at least one frame of audio")
    if start < 0 or length < 1:
        raise ValueError(f"chunk start must be >= 0 and length >= 1, got start={start}, length={length}")
    if start >= num_audio_frames:
        raise ValueError(
            f"chunk starts at frame {start} but the audio has only {num_audio_frames} frames; stop the chunk loop "
            "at the audio length"
        )


def frame_windows(features: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """Features [T, L, D] -> windows [length, 5, L, D] for video frames start .. start + length - 1.

    ``features`` may be anything sliced like a tensor (e.g. features on disk, ``spill.SpillRows``): only the
    rows the chunk's windows reach are read, the tail's mirror included.
    """
    num_audio = features.shape[0]
    _check_range(num_audio, start, length)
    end = start + length
    extended = num_audio if end <= num_audio else end + TAIL_EXTRA_FRAMES  # length of the mirrored extension
    frames = torch.arange(start, end)
    index = (frames[:, None] + torch.tensor(WINDOW_OFFSETS)[None]).clamp(0, extended - 1)
    rows = mirrored_rows(index, num_audio)
    first, last = int(rows.min()), int(rows.max()) + 1
    block = features[first:last]
    return block[(rows - first).to(block.device)]


def mirrored_rows(index: torch.Tensor, num_audio: int) -> torch.Tensor:
    """The feature row at position ``index`` of the tail extension: the T features, then alternately reversed
    (last frame first) and forward copies of them."""
    turn, offset = index // num_audio, index % num_audio
    return torch.where(turn % 2 == 0, offset, num_audio - 1 - offset)


def chunk_audio_windows(features: torch.Tensor, start: int, length: int) -> ChunkAudioWindows:
    """Windows for one chunk of one speaker [T, L, D] or several [P, T, L, D], plus the frames to trim."""
    per_speaker = features if features.ndim == 4 else features[None]
    num_audio = per_speaker.shape[1]
    _check_range(num_audio, start, length)
    windows = torch.stack([frame_windows(f, start, length) for f in per_speaker])  # [P, length, 5, L, D]
    trim = max(0, start + length - num_audio)
    return ChunkAudioWindows(windows if features.ndim == 4 else windows[0], length - trim, trim)
