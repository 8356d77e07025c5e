"""Frame sinks for the streaming sampler: an mp4 writer that streams into ffmpeg, and an in-memory collector.

A sink receives frames as ``[T, 3, H, W]`` float tensors in [-1, 1], chunk by chunk, and is closed once.

:class:`Mp4Writer` pipes raw RGB frames into the ffmpeg binary shipped with ``imageio-ffmpeg`` (H.264,
yuv420p), so no more than one chunk of frames is ever held in Python. The soundtrack is spilled to a temporary file
when the writer is made; on close it is cut or zero-padded to exactly the video's duration and muxed in as
AAC in a second, stream-copying ffmpeg pass.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Optional, Protocol, Union

import numpy as np
import torch

from talkgen_core.audio.spill import SpilledSamples
from talkgen_core.files.atomic import TempFile
from talkgen_core.files.guard import refuse_overwriting_inputs


class FrameSink(Protocol):
    def write(self, frames: torch.Tensor) -> None:
        """Append frames ``[T, 3, H, W]`` in [-1, 1]."""

    def close(self) -> None:
        """Finish the output (idempotent)."""


@dataclass(frozen=True)
class WrittenVideo:
    path: Path
    frames: int
    fps: float
    width: int
    height: int
    has_audio: bool

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def ffmpeg_executable() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise RuntimeError("writing mp4 needs the imageio-ffmpeg package: pip install imageio-ffmpeg") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def frames_to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``[T, 3, H, W]`` in [-1, 1] -> ``[T, H, W, 3]`` uint8 (rounded, clipped)."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be [T, 3, H, W], got {tuple(frames.shape)}")
    pixels = ((frames.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _rate(fps: float) -> str:
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rate = Fraction(fps).limit_denominator(100000)
    return f"{rate.numerator}/{rate.denominator}"


def spill_audio(audio: torch.Tensor, handle: BinaryIO, sample_rate: int) -> int:
    """Write ``[S]`` or ``[C, S]`` audio in [-1, 1] into the open file ``handle`` as interleaved float32 (one
    second at a time, so no full-length copy is made; flushed at the end); returns the channel count."""
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or not 1 <= audio.shape[0] <= 8 or audio.shape[1] == 0:
        raise ValueError(f"audio must be [S] or [C, S] with 1 <= C <= 8 and S > 0, got {tuple(audio.shape)}")
    for start in range(0, audio.shape[1], sample_rate):
        block = audio[:, start : start + sample_rate].float().clamp(-1.0, 1.0)
        handle.write(block.t().contiguous().numpy().astype("<f4").tobytes())
    handle.flush()
    return int(audio.shape[0])


def mux_raw_audio(video: Path, raw_audio: Path, channels: int, sample_rate: int, samples: int, out: Path) -> None:
    """Stream-copy ``video``'s first video stream and add the raw float32 audio, cut or zero-padded to exactly
    ``samples`` samples, as AAC into ``out``."""
    command = [
        ffmpeg_executable(), "-y", "-hide_banner", "-loglevel", "error",
        "-i", str(video),
        "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels), "-i", str(raw_audio),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
        "-af", f"apad=whole_len={samples},atrim=end_sample={samples}", "-c:a", "aac", "-b:a", "192k",
        "-movflags", "+faststart", str(out),
    ]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"muxing audio into {out} failed: {done.stderr.decode(errors='replace')[-2000:]}")


def mux_audio(video: Path, audio: torch.Tensor, sample_rate: int, duration_s: float, out: Path) -> None:
    """Give an existing video a new soundtrack: ``audio`` (``[S]`` or ``[C, S]``) cut or padded to ``duration_s``.

    The video stream is copied, not re-encoded. ``out`` must differ from ``video``; it appears only when
    complete (an older file there is kept until then).
    """
    refuse_overwriting_inputs(out, [("video", video)])
    raw, muxed = TempFile(out, ".audio.f32"), TempFile(out)
    try:
        channels = spill_audio(torch.as_tensor(audio, dtype=torch.float32), raw.handle, sample_rate)
        mux_raw_audio(Path(video), raw.path, channels, sample_rate, round(duration_s * sample_rate), muxed.path)
        muxed.commit()
    finally:
        muxed.discard()
        raw.discard()


def write_gif(video: Union[str, Path], gif: Union[str, Path], fps: float = 12.0, width: int = 256) -> Path:
    """An animated GIF preview of a video (``fps`` frames per second, ``width`` pixels wide, own palette)."""
    if fps <= 0 or width < 2:
        raise ValueError(f"gif fps must be > 0 and width >= 2, got fps={fps}, width={width}")
    gif = Path(gif)
    gif.parent.mkdir(parents=True, exist_ok=True)
    graph = (f"fps={fps:g},scale={int(width)}:-2:flags=lanczos,split[frames][again];"
             "[frames]palettegen[palette];[again][palette]paletteuse")
    command = [ffmpeg_executable(), "-y", "-hide_banner", "-loglevel", "error", "-i", str(video),
               "-filter_complex", graph, "-loop", "0", str(gif)]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"making the GIF preview {gif} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return gif


class Mp4Writer:
    """Stream frames into an H.264 mp4, then mux the audio in, trimmed or padded to the video length.

    Everything is written to temp files beside ``path`` (see :mod:`talkgen_core.files.atomic`); the finished
    video is renamed to ``path`` by :meth:`close`, so ``path`` never holds a partial or short video, and an
    older file there stays until then. :meth:`abort` removes the temps and leaves ``path`` untouched.

    Args:
        path: output file (its folder is created).
        fps: output frame rate.
        audio: ``[S]`` mono or ``[C, S]`` float waveform in [-1, 1] (a tensor, or ``SpilledSamples`` on disk), or
            None for a silent video.
        sample_rate: the audio's sample rate.
        crf, preset: x264 quality and speed.
    """

    def __init__(self, path: Union[str, Path], fps: float, audio: Optional[torch.Tensor] = None,
                 sample_rate: int = 16000, crf: int = 18, preset: str = "medium") -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self._rate = _rate(self.fps)
        self.sample_rate = int(sample_rate)
        self.crf, self.preset = crf, preset
        self.frames_written = 0
        self.size: Optional[tuple[int, int]] = None  # (width, height)
        self.result: Optional[WrittenVideo] = None
        self._process: Optional[subprocess.Popen] = None
        self._log = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._video: Optional[TempFile] = None  # made when the first frames arrive
        self._audio: Optional[TempFile] = None
        self.audio_channels = 0
        if audio is not None:
            # spilled to a temporary file now, so this writer holds no copy while the video is rendered
            self._audio = TempFile(self.path, ".audio.f32")
            try:
                samples = audio if isinstance(audio, SpilledSamples) else torch.as_tensor(audio, dtype=torch.float32)
                self.audio_channels = spill_audio(samples, self._audio.handle, self.sample_rate)
            except BaseException:
                self._audio.discard()
                raise

    @property
    def has_audio(self) -> bool:
        return self.audio_channels > 0

    def _start(self, width: int, height: int) -> None:
        self.size = (width, height)
        self._video = TempFile(self.path, ".video-only.mp4")
        self._log = tempfile.TemporaryFile()
        command = [
            ffmpeg_executable(), "-y", "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", self._rate, "-i", "-",
        ]
        if width % 2 or height % 2:  # yuv420p needs even sizes: pad by one pixel, frame count unchanged
            command += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        command += ["-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", str(self._video.path)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def _ffmpeg_error(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-2000:]

    def write(self, frames: torch.Tensor) -> None:
        """Append frames ``[T, 3, H, W]`` in [-1, 1]."""
        if self.result is not None:
            raise RuntimeError(f"{self.path} is already closed")
        pixels = frames_to_uint8(frames)
        height, width = pixels.shape[1:3]
        if self._process is None:
            self._start(width, height)
        elif (width, height) != self.size:
            raise ValueError(f"frame size changed from {self.size} to {(width, height)} within one video")
        try:
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.write(pixels.tobytes())
        except BrokenPipeError:
            raise RuntimeError(f"ffmpeg stopped while writing {self.path}: {self._ffmpeg_error()}") from None
        self.frames_written += pixels.shape[0]

    def close(self) -> WrittenVideo:
        """Finish encoding, mux the audio and rename the result to ``path``; returns what was written
        (idempotent). On failure the temps are removed and ``path`` is left as it was."""
        if self.result is not None:
            return self.result
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        width, height = self.size or (0, 0)
        self.result = WrittenVideo(self.path, self.frames_written, self.fps, width, height, self.has_audio)
        return self.result

    def _finish(self) -> None:
        if self._process is None or self._video is None:
            raise RuntimeError(f"no frames were written to {self.path}")
        assert self._process.stdin is not None
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        if self._process.wait() != 0:
            raise RuntimeError(f"ffmpeg failed to encode {self.path}: {self._ffmpeg_error()}")
        if self._log is not None:
            self._log.close()
        if self._audio is None:
            self._video.commit()
            return
        muxed = TempFile(self.path)
        try:
            samples = round(self.frames_written / self.fps * self.sample_rate)
            mux_raw_audio(self._video.path, self._audio.path, self.audio_channels, self.sample_rate, samples,
                          muxed.path)
            muxed.commit()
        finally:
            muxed.discard()
        self._video.discard()
        self._audio.discard()

    def abort(self) -> None:
        """Stop ffmpeg and remove the temp files; ``path`` is left as it was (for errors and cancels, where a
        short video must not look finished)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for temp in (self._video, self._audio):
            if temp is not None:
                temp.discard()
        self.result = None


class FrameCollector:
    """Keeps every frame in memory, for callers that want the frames returned (e.g. ComfyUI IMAGE outputs).

    Only for clips that fit in memory; long videos should go to an :class:`Mp4Writer`.
    """

    def __init__(self) -> None:
        self._chunks: list[torch.Tensor] = []
        self.frames_written = 0

    def write(self, frames: torch.Tensor) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be [T, 3, H, W], got {tuple(frames.shape)}")
        self._chunks.append(frames.detach().float().cpu())
        self.frames_written += frames.shape[0]

    def close(self) -> None:
        return None

    def frames(self) -> torch.Tensor:
        """All frames so far. [T, 3, H, W] in [-1, 1]"""
        if not self._chunks:
            raise RuntimeError("no frames were collected")
        return torch.cat(self._chunks)

    def images(self) -> torch.Tensor:
        """All frames as ``[T, H, W, 3]`` in [0, 1] (the ComfyUI IMAGE layout)."""
        return ((self.frames() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).contiguous()
