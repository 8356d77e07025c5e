"""What a video should look like: a reference image, images per chunk, keyframes, or a source video to dub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from talkgen_core.video.frames import FrameSequence

VideoSource = Union[str, Path, FrameSequence]


@dataclass(frozen=True)
class ReferenceInput:
    """Exactly one of ``image``, ``images`` (with ``keyframe_times`` for keyframes) or ``video``.

    Images are paths, PIL images, ``[H, W, 3]`` uint8 arrays or ``[3, H, W]`` tensors in [-1, 1].
    """

    image: Any = None
    images: Optional[list] = None
    keyframe_times: Optional[list[float]] = None
    video: Optional[VideoSource] = None
    reference_anchor: str = "chunk_start"

    def __post_init__(self) -> None:
        given = [name for name in ("image", "images", "video") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a reference needs exactly one of image, images or video; got {given or 'none'}")
        if self.images is not None and len(self.images) == 0:
            raise ValueError("the reference images list is empty; give at least one image")
        if self.keyframe_times is not None:
            if self.images is None:
                raise ValueError("keyframe_times go with images (one time per image)")
            if len(self.keyframe_times) != len(self.images):
                raise ValueError(
                    f"keyframe_times has {len(self.keyframe_times)} entries for {len(self.images)} images; "
                    "give one time per image"
                )
            if list(self.keyframe_times) != sorted(self.keyframe_times):
                raise ValueError(f"keyframe_times must be ascending, got {list(self.keyframe_times)}")

    def generate_kwargs(self) -> dict[str, Any]:
        """The reference as keyword arguments of :func:`talkgen_core.pipeline.generate`."""
        return {
            "image": self.image, "images": self.images, "keyframe_times": self.keyframe_times,
            "video": self.video, "reference_anchor": self.reference_anchor,
        }  # fmt: skip


SAMPLE_RATE = 16000


@dataclass(frozen=True)
class DubbingSource:
    reference: ReferenceInput
    fps: float
    seconds: float
    audio: torch.Tensor  # [S] mono at SAMPLE_RATE; silence of the video's length when it has no sound


def open_dubbing_source(video: VideoSource, anchor: str = "chunk_start") -> DubbingSource:
    """A source video for sparse-frame dubbing: its frame rate and its own soundtrack, read lazily."""
    silence = lambda seconds: torch.zeros(max(1, round(seconds * SAMPLE_RATE)))  # noqa: E731
    if isinstance(video, FrameSequence):
        reference = ReferenceInput(video=video, reference_anchor=anchor)
        return DubbingSource(reference, video.fps, video.duration, silence(video.duration))
    from talkgen_core.audio import AudioInputError, load_audio
    from talkgen_core.video.reader import VideoReader

    with VideoReader(video) as reader:
        fps, seconds = reader.fps, reader.duration
    try:
        audio = load_audio(str(video), sample_rate=SAMPLE_RATE, target_lufs=None)
    except AudioInputError:  # a silent source video is fine: the new audio drives the face
        audio = silence(seconds)
    return DubbingSource(ReferenceInput(video=str(video), reference_anchor=anchor), fps, seconds, audio)
