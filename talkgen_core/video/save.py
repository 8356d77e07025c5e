"""Saving a finished video: frames streamed into an mp4, or an existing video file with a new soundtrack."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional, Union

import torch

from talkgen_core.files.atomic import atomic_path
from talkgen_core.files.guard import refuse_overwriting_inputs

from .frames import images_to_frames
from .reader import VideoReader
from .writer import Mp4Writer, WrittenVideo, mux_audio

ENCODE_BATCH = 16  # frames converted and piped to the encoder at a time


def _channels_first(audio: torch.Tensor) -> torch.Tensor:
    """``[S]``, ``[C, S]`` or a host's ``[1, C, S]`` -> ``[C, S]``."""
    if audio.ndim == 3:
        if audio.shape[0] != 1:
            raise ValueError(f"audio holds a batch of {audio.shape[0]} tracks; give one")
        audio = audio[0]
    return audio[None] if audio.ndim == 1 else audio


def save_video(
    path: Union[str, Path],
    *,
    source: Optional[Union[str, Path]] = None,
    images: Optional[torch.Tensor] = None,
    fps: float = 25.0,
    audio: Optional[torch.Tensor] = None,
    sample_rate: Optional[int] = None,
    crf: int = 17,
) -> WrittenVideo:
    """Write ``path`` from exactly one of ``source`` (a video file, stream-copied) or ``images``
    (``[T, H, W, 3]`` in [0, 1], encoded at ``fps``). ``audio`` replaces the soundtrack, cut or padded to the
    video's length; without it a source keeps its own sound and images get none. ``path`` appears only when
    complete, and must not be ``source``."""
    if (source is None) == (images is None):
        raise ValueError("save_video needs exactly one of source (a video file) or images")
    if audio is not None and not sample_rate:
        raise ValueError("audio needs its sample_rate")
    track = None if audio is None else _channels_first(torch.as_tensor(audio, dtype=torch.float32))
    path = Path(path)
    refuse_overwriting_inputs(path, [("source video", source)], flag="path")
    if images is not None:
        writer = Mp4Writer(path, fps=fps, audio=track, sample_rate=sample_rate or 16000, crf=crf)
        for start in range(0, images.shape[0], ENCODE_BATCH):
            writer.write(images_to_frames(images[start : start + ENCODE_BATCH]))
        return writer.close()
    with VideoReader(source) as reader:
        frames, rate, width, height = reader.frame_count, reader.fps, reader.width, reader.height
    path.parent.mkdir(parents=True, exist_ok=True)
    if track is None:
        with atomic_path(path) as temp:
            shutil.copyfile(source, temp)
        return WrittenVideo(path, frames, rate, width, height, has_audio=True)
    mux_audio(Path(source), track, int(sample_rate), frames / rate, path)
    return WrittenVideo(path, frames, rate, width, height, has_audio=True)
