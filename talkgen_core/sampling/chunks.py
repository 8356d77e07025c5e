"""The chunk plan of the streaming sampler: which frames each chunk generates and which it keeps.

Every chunk is a window of ``chunk_frames`` video frames (81 officially) starting at an absolute frame index;
chunk k starts at ``k * stride`` with ``stride = chunk_frames - context_frames`` (81 - 9 = 72). The first
chunk keeps all its frames; a later chunk's first ``context_frames`` frames repeat the previous chunk's tail
(they are its conditioning), so it keeps only the rest. The official end rule: the chunk whose window reaches
the end of the audio is the last one. Its frames past the audio are generated on padded audio and dropped,
so the output has exactly ``round(audio_seconds * fps)`` frames. (The audio windows themselves, padding
included, come from :func:`talkgen_core.audio.frame_windows`, by absolute frame index.)

Both lengths must be ``4 n + 1`` so that they map onto whole latent frames of the causal VAE
(1 + 4 n frames <-> 1 + n latents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

VAE_TEMPORAL_STRIDE = 4


def latent_frames(video_frames: int) -> int:
    """Latent frames for ``1 + 4 n`` video frames."""
    return 1 + (video_frames - 1) // VAE_TEMPORAL_STRIDE


def frames_for_duration(seconds: float, fps: float) -> int:
    """Exact output length: ``round(seconds * fps)`` (Python's round, half to even)."""
    if seconds <= 0 or not math.isfinite(seconds):
        raise ValueError(f"audio duration must be a positive number of seconds, got {seconds}")
    if fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be positive, got {fps}")
    frames = round(seconds * fps)
    if frames < 1:
        raise ValueError(f"{seconds} s of audio at {fps} fps is shorter than one frame")
    return frames


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk. All indices are absolute video frame indices of the output."""

    index: int
    start: int  # first frame of the window
    length: int  # frames generated (the window length)
    keep_from: int  # offset in the window of the first frame that goes to the output
    keep_until: int  # offset in the window one past the last output frame
    padded_frames: int  # frames at the end of the window past the audio (need padded audio)
    context_latents: int  # leading latent frames that are clean conditioning

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def output_start(self) -> int:
        return self.start + self.keep_from

    @property
    def output_frames(self) -> int:
        return self.keep_until - self.keep_from


@dataclass(frozen=True)
class ChunkPlan:
    total_frames: int
    chunk_frames: int = 81
    context_frames: int = 9

    def __post_init__(self) -> None:
        for name in ("chunk_frames", "context_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or (value - 1) % VAE_TEMPORAL_STRIDE:
                raise ValueError(f"{name} must be 4n+1 (e.g. 81, 9, 5), got {value!r}")
        if self.context_frames >= self.chunk_frames:
            raise ValueError(
                f"context_frames ({self.context_frames}) must be smaller than chunk_frames ({self.chunk_frames})"
            )
        if not isinstance(self.total_frames, int) or self.total_frames < 1:
            raise ValueError(f"total_frames must be a positive integer, got {self.total_frames!r}")

    @classmethod
    def for_audio(cls, seconds: float, fps: float, chunk_frames: int = 81, context_frames: int = 9) -> "ChunkPlan":
        return cls(frames_for_duration(seconds, fps), chunk_frames, context_frames)

    @property
    def stride(self) -> int:
        return self.chunk_frames - self.context_frames

    @property
    def num_chunks(self) -> int:
        if self.total_frames <= self.chunk_frames:
            return 1
        return 1 + math.ceil((self.total_frames - self.chunk_frames) / self.stride)

    @property
    def latent_frames_per_chunk(self) -> int:
        return latent_frames(self.chunk_frames)

    def chunk(self, index: int) -> ChunkSpec:
        if not 0 <= index < self.num_chunks:
            raise IndexError(f"chunk {index} out of range: the plan has {self.num_chunks} chunks")
        start = index * self.stride
        keep_from = 0 if index == 0 else self.context_frames
        keep_until = min(self.chunk_frames, self.total_frames - start)
        return ChunkSpec(
            index=index,
            start=start,
            length=self.chunk_frames,
            keep_from=keep_from,
            keep_until=keep_until,
            padded_frames=max(0, start + self.chunk_frames - self.total_frames),
            context_latents=1 if index == 0 else latent_frames(self.context_frames),
        )

    def chunks(self) -> list[ChunkSpec]:
        return [self.chunk(i) for i in range(self.num_chunks)]

