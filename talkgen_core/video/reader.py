"""Lazy, time-based access to a video's frames (PyAV); its audio track is read by talkgen_core.audio.load_audio.

:class:`VideoReader` decodes forward on demand and keeps only a small window of recent frames, so picking
frames at increasing times (the chunk loop) costs one pass over the file and constant memory. A request
before the cached window seeks back. The frame shown at time ``t`` is the last frame whose presentation
time is ``<= t`` (a 30 fps source at t = 2.88 s gives frame 86), which makes the access fps-correct for any
output rate.

Frames come out as a player shows them: a display rotation (portrait phone video, see
:mod:`talkgen_core.video.rotation`) is applied, and ``width`` / ``height`` are those of the turned frames.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from .rotation import frame_rotation, quarter_turns, upright

# frames that start within this many seconds after t still count as "at t" (absorbs pts rounding)
_TIME_TOLERANCE = 1e-4
# a request further ahead than this seeks instead of decoding every frame in between
_SEEK_AHEAD_SECONDS = 5.0


class VideoReader:
    """Frames of one video stream by time. Use as a context manager or call :meth:`close`.

    Attributes: ``fps`` (average frame rate), ``duration`` (seconds), ``frame_count`` (from the container,
    or estimated from duration x fps), ``width``, ``height`` (as displayed), ``turns`` (counter-clockwise
    quarter turns applied to the stored frames).
    """

    def __init__(self, path: Union[str, Path], cache_frames: int = 48) -> None:
        try:
            import av
        except ImportError as exc:
            raise RuntimeError("reading video needs the PyAV package: pip install av") from exc
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video not found: {self.path}")
        self._av = av
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise ValueError(
                f"video {self.path} could not be read ({exc}); give an mp4, mov, mkv or webm file"
            ) from exc
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        if not rate:
            self._container.close()
            raise ValueError(f"{self.path}: cannot tell the frame rate of the video stream")
        self.fps = float(rate)
        self.time_base = float(self._stream.time_base)
        if self._stream.duration is not None:
            self.duration = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration is not None:
            self.duration = self._container.duration / 1_000_000
        else:
            self.duration = 0.0
        self.frame_count = int(self._stream.frames) or int(round(self.duration * self.fps))
        self.width = int(self._stream.codec_context.width)
        self.height = int(self._stream.codec_context.height)
        self._cache: collections.deque[tuple[float, np.ndarray]] = collections.deque(maxlen=max(2, cache_frames))
        self._decoder: Optional[Iterator] = None
        self._exhausted = False
        self.turns = self._display_turns()
        if self.turns % 2:
            self.width, self.height = self.height, self.width

    def _display_turns(self) -> int:
        """The display rotation, read off the first frame (the display matrix travels as frame side data)."""
        try:
            first = next(self._container.decode(self._stream), None)
        except self._av.error.FFmpegError as exc:
            self._container.close()
            raise ValueError(f"video {self.path}: its first frame could not be decoded ({exc})") from exc
        if first is None:
            self._container.close()
            raise ValueError(f"{self.path}: no frame could be decoded")
        return quarter_turns(frame_rotation(first, self._stream.metadata))

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def _restart(self, time_s: float) -> None:
        """Seek to the keyframe at or before time_s and restart decoding there."""
        self._cache.clear()
        self._exhausted = False
        target = max(0, int(time_s / self.time_base))
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)

    def _decode_next(self) -> bool:
        if self._decoder is None:
            self._restart(0.0)
        assert self._decoder is not None
        try:
            frame = next(self._decoder)
        except (StopIteration, self._av.error.EOFError):
            self._exhausted = True
            return False
        time_s = float(frame.pts * self.time_base) if frame.pts is not None else (
            self._cache[-1][0] + 1.0 / self.fps if self._cache else 0.0)
        self._cache.append((time_s, upright(frame.to_ndarray(format="rgb24"), self.turns)))
        return True

    def frame_at(self, time_s: float) -> np.ndarray:
        """The frame shown at ``time_s`` seconds: ``[H, W, 3]`` uint8. Past the end: the last frame."""
        if time_s < 0:
            raise ValueError(f"time must be >= 0, got {time_s}")
        behind = bool(self._cache) and time_s + _TIME_TOLERANCE < self._cache[0][0]
        far_ahead = bool(self._cache) and time_s > self._cache[-1][0] + _SEEK_AHEAD_SECONDS
        if self._decoder is None or behind or far_ahead or (not self._cache and not self._exhausted):
            self._restart(time_s)
        # decode until a frame starts after time_s (so the previous one is the frame shown at time_s)
        while not self._exhausted and (not self._cache or self._cache[-1][0] <= time_s + _TIME_TOLERANCE):
            if not self._decode_next():
                break
        shown = [image for start, image in self._cache if start <= time_s + _TIME_TOLERANCE]
        if shown:
            return shown[-1]
        if self._cache:  # time_s falls before the first decoded frame (a stream not starting at 0)
            return self._cache[0][1]
        raise ValueError(f"{self.path}: no frame could be decoded")

    def frame_index_at(self, time_s: float) -> int:
        """Index of the frame shown at ``time_s`` on a constant-rate grid: ``floor(t * fps)``, capped at the end."""
        index = int(np.floor(time_s * self.fps + _TIME_TOLERANCE))
        return min(max(index, 0), max(self.frame_count - 1, 0))

    def iter_frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """All frames from the start as ``(time_s, [H, W, 3] uint8)``, decoded one at a time."""
        self._restart(0.0)
        while self._decode_next():
            yield self._cache[-1]


def read_images(path: Union[str, Path]) -> "torch.Tensor":
    """Every frame of a video file as ``[T, H, W, 3]`` floats in [0, 1] (ComfyUI's IMAGE): the whole video in
    memory, for hosts whose frame outputs are tensors."""
    import torch

    with VideoReader(path) as reader:
        frames = [torch.from_numpy(frame) for _, frame in reader.iter_frames()]
    return torch.stack(frames).float() / 255.0
