"""The training-free refiner for real weights: the dubbing path's SDEdit at a higher resolution.

No public refiner weights exist for Wan2.1-I2V-14B + InfiniteTalk, so the same model refines: the low-resolution
video is upscaled (bicubic, :mod:`.upscale`), encoded, noised to ``strength`` and denoised at the target size
with its audio still conditioning and the reference image as every chunk's reference (its latent is the first,
pinned latent of the video, the prefix anchor InfinityHuman attends to). It runs on
:func:`talkgen_core.pipeline.generate`, so job folder, resume, progress, cancel and flat memory come with it; the
output keeps the input's frame count, frame rate and soundtrack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .upscale import UpscaledFrames, refined_size

DEFAULT_SCALE = 2.0
DEFAULT_STRENGTH = 0.5  # the SDEdit start: 1 = from pure noise (the low-resolution video only sets the length)
# generate() keywords that refine_video sets itself
OWN_KEYWORDS = ("video", "image", "images", "keyframe_times", "anchor_image", "size", "sdedit_strength", "fps",
                "audio", "speech", "audio_mode")


def open_frames(video: Any, fps: Optional[float] = None):
    """A frame source for ``video``: a file (opened lazily), an object with ``frame_at`` (as is), or frames
    ``[T, H, W, 3]`` in [0, 1] (ComfyUI's IMAGE), which need ``fps``."""
    from talkgen_core.video.frames import FrameSequence
    from talkgen_core.video.reader import VideoReader

    if isinstance(video, (str, Path)):
        return VideoReader(video)
    if hasattr(video, "frame_at"):
        return video
    if isinstance(video, torch.Tensor):
        if fps is None:
            raise ValueError("frames given as a tensor need fps= (the frame rate they were made at)")
        return FrameSequence.from_images(video, fps)
    raise TypeError(f"unsupported video of type {type(video).__name__}; pass a file, frames [T, H, W, 3] in [0, 1] "
                    "or a frame source with frame_at()")


def fitted_soundtrack(audio: Any, frames: int, fps: float) -> dict:
    """``audio`` (a file, e.g. the video itself, or a ComfyUI AUDIO dict) cut or padded with silence to exactly
    ``frames / fps`` seconds, as a ComfyUI AUDIO dict at its own rate and channels, so the refined video has
    exactly ``frames`` frames (an mp4's decoded audio runs up to one codec frame, ~23 ms, past its video)."""
    from talkgen_core.audio.decode import decode_audio

    decoded = decode_audio(audio)
    samples = np.asarray(decoded.samples, dtype=np.float32)  # [C, S]
    want = round(frames / fps * decoded.sample_rate)
    fitted = np.zeros((samples.shape[0], want), np.float32)
    fitted[:, : min(want, samples.shape[1])] = samples[:, :want]
    return {"waveform": torch.from_numpy(fitted)[None], "sample_rate": decoded.sample_rate}


def refine_video(
    video: Any,
    image: Any,
    *,
    audio: Optional[Any] = None,
    speech: Optional[Any] = None,
    scale: float = DEFAULT_SCALE,
    strength: float = DEFAULT_STRENGTH,
    fps: Optional[float] = None,
    **options: Any,
):
    """Refine ``video`` to ``scale`` times its size; returns :class:`talkgen_core.pipeline.GenerateResult`.

    video: a file, a frame source (``frame_at``) or frames ``[T, H, W, 3]`` in [0, 1] at ``fps``.
    image: the reference (a file, PIL image, ``[H, W, 3]`` uint8 array or ``[3, H, W]`` tensor in [-1, 1]).
    audio: what conditions the motion and what the output carries; default the video file's own soundtrack.
    speech: instead of audio, pre-encoded speech (``SpeechEmbeds``) with one row per video frame.
    scale: the size factor; each side is rounded to a multiple of 16.
    strength: the SDEdit start noise level, (0, 1): lower keeps more of the low-resolution video.
    options: any other :func:`~talkgen_core.pipeline.generate` keyword (models, steps, seed, job_dir, out, ...).
    """
    from talkgen_core.pipeline import generate

    clash = sorted(set(options) & set(OWN_KEYWORDS))
    if clash:
        raise ValueError(f"refine_video sets {', '.join(clash)} itself; leave them out (use scale, strength, audio)")
    if not 0.0 < strength < 1.0:
        raise ValueError(f"strength must be in (0, 1) (the SDEdit start; 1 would ignore the video), got {strength}")
    source = open_frames(video, fps)
    try:
        frames, rate = int(source.frame_count), float(source.fps)
        if speech is None:
            if audio is None and not isinstance(video, (str, Path)):
                raise ValueError("frames in memory carry no soundtrack; give audio= (or speech=)")
            audio = fitted_soundtrack(video if audio is None else audio, frames, rate)
        elif audio is not None:
            raise ValueError("give either audio or speech (already encoded), not both")
        elif int(speech.features.shape[1]) != frames:
            raise ValueError(f"the speech covers {int(speech.features.shape[1])} frames but the video has {frames}; "
                             "give the speech the low-resolution video was made from")
        height, width = refined_size(source.height, source.width, scale)
        result = generate(video=UpscaledFrames(source, height, width), anchor_image=image, audio=audio,
                          speech=speech, fps=rate, size=f"{width}x{height}", sdedit_strength=strength, **options)
    finally:
        if isinstance(video, (str, Path)):
            source.close()
    if result.frames != frames:
        raise RuntimeError(f"the refined video has {result.frames} frames for {frames} input frames")
    return result
