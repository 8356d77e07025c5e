"""``refine_video``: a low-resolution talking video to ``scale`` times its size, by one of two refiners.

* **Embedded** (the demo's domain; ``models.dit`` is an :class:`~.embedded.EmbeddedRefiner`, e.g.
  :func:`talkgen_core.pipeline.load_demo_refiner`): the trained refiner runs the ``refiner`` chain from noise,
  conditioned on the low-resolution video's degraded latents (noise level ``strength``), the landmark network's
  pose and the reference's latent as every chunk's prefix (InfinityHuman).
* **Training-free** (real weights: no public refiner weights exist for Wan2.1-I2V-14B + InfiniteTalk, so the same
  model refines): the dubbing path's SDEdit at the higher resolution: the video is upscaled (bicubic,
  :mod:`.upscale`), encoded, noised to ``strength`` and denoised at the target size, with the reference image as
  every chunk's reference (its latent is the first, pinned latent of the video).

Both run on :func:`talkgen_core.pipeline.generate` with the video's audio still conditioning, so job folder,
resume, progress, cancel and flat memory come with them; the output keeps the input's frame count, frame rate and
soundtrack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from talkgen_core.sampling.strategies import DEFAULT_STRATEGY

from .upscale import UpscaledFrames, refined_size

DEFAULT_SCALE = 2.0
DEFAULT_STRENGTH = 0.5  # training-free: the SDEdit start (1 = from pure noise: the video would only set the length)
DEFAULT_CONDITION_NOISE = 0.2  # embedded: the degraded latents' noise level (trained on 0 to 0.5)
# colour correction towards the reference, by route: the embedded refiner takes its colours from the reference's
# prefix latent and the (already corrected) low-resolution video, and pulling each frame's statistics to the
# reference's once more moved the face away from it (demo, 6 s: face error 13.8 grey levels with, 11.1 without,
# bicubic 12.7); the training-free route redraws more and keeps the generator's correction
ROUTE_COLOUR_STRENGTH = {"embedded": 0.0, "training-free": 1.0}
# generate() keywords that refine_video sets itself
OWN_KEYWORDS = ("video", "image", "images", "keyframe_times", "anchor_image", "size", "sdedit_strength", "fps",
                "audio", "speech", "audio_mode")


def is_embedded_refiner(models: Any) -> bool:
    """Whether ``models`` (a pipeline.Models or None) hold the embedded refiner rather than a DiT."""
    return hasattr(getattr(models, "dit", None), "chunk_condition")


def route_keywords(models: Any, scale: float, strength: Optional[float], condition_noise: Optional[float],
                   landmarks: Optional[str] = None) -> dict:
    """generate() keywords of the refiner ``models`` hold, checked. ``strength``: the training-free route's SDEdit
    start, or for the embedded refiner its degradation strength (InfinityHuman's alpha), the same as
    ``condition_noise``, which only the embedded refiner takes (None: the route's default)."""
    if is_embedded_refiner(models):
        if strength is not None and condition_noise is not None:
            raise ValueError("give the embedded refiner's degradation strength once: strength or condition_noise")
        condition_noise = strength if condition_noise is None else condition_noise
        trained = models.dit.scale
        if scale != trained:
            raise ValueError(f"the embedded refiner was trained to lift the size {trained}x; use scale {trained} (or "
                             "the training-free route with a DiT for another factor)")
        noise = DEFAULT_CONDITION_NOISE if condition_noise is None else condition_noise
        if not 0.0 <= noise < 1.0:
            raise ValueError(f"condition_noise (the embedded refiner's) must be in [0, 1), got {noise}")
        return {"strategy": "refiner", "condition_noise": float(noise), "landmarks": landmarks or "net",
                "colour_strength": ROUTE_COLOUR_STRENGTH["embedded"]}
    if condition_noise is not None or landmarks not in (None, "net"):
        raise ValueError("condition_noise and landmarks are the embedded refiner's; the training-free route (a DiT) "
                         "takes strength")
    start = DEFAULT_STRENGTH if strength is None else strength
    if not 0.0 < start < 1.0:
        raise ValueError(f"strength must be in (0, 1) (the SDEdit start; 1 would ignore the video), got {start}")
    return {"sdedit_strength": float(start), "colour_strength": ROUTE_COLOUR_STRENGTH["training-free"]}


def default_refiner_models(device: Any = None):
    """The demo's refiner when none is given: the embedded one where its weights are shipped, else the demo DiT
    (training-free)."""
    from talkgen_core.pipeline import load_demo_models, load_demo_refiner

    from .embedded import has_embedded_refiner

    device = device or "cpu"
    return load_demo_refiner(device) if has_embedded_refiner() else load_demo_models(device)


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
    strength: Optional[float] = None,
    condition_noise: Optional[float] = None,
    landmarks: Optional[str] = None,
    fps: Optional[float] = None,
    **options: Any,
):
    """Refine ``video`` to ``scale`` times its size; returns :class:`talkgen_core.pipeline.GenerateResult`.

    video: a file, a frame source (``frame_at``) or frames ``[T, H, W, 3]`` in [0, 1] at ``fps``.
    image: the reference (a file, PIL image, ``[H, W, 3]`` uint8 array or ``[3, H, W]`` tensor in [-1, 1]).
    audio: what conditions the motion and what the output carries; default the video file's own soundtrack.
    speech: instead of audio, pre-encoded speech (``SpeechEmbeds``) with one row per video frame.
    scale: the size factor; each side is rounded to a multiple of 16 (the embedded refiner: its trained factor).
    strength: training-free route: the SDEdit start noise level, (0, 1), default 0.5 (lower keeps more of the
        low-resolution video); embedded route: the same as ``condition_noise``.
    condition_noise: embedded route: the degraded low-resolution latents' noise level, [0, 1), default 0.2
        (higher trusts the low-resolution video less).
    landmarks: embedded route: the pose's landmark detector (:mod:`.detectors`), default ``net``.
    options: any other :func:`~talkgen_core.pipeline.generate` keyword (models, steps, seed, job_dir, out, ...);
        no models: :func:`default_refiner_models`; ``colour_strength`` None or absent: the route's
        (:data:`ROUTE_COLOUR_STRENGTH`).
    """
    from talkgen_core.pipeline import generate

    clash = sorted(set(options) & set(OWN_KEYWORDS))
    if clash:
        raise ValueError(f"refine_video sets {', '.join(clash)} itself; leave them out (use scale, strength, audio)")
    if options.get("models") is None:
        options["models"] = default_refiner_models(options.get("device"))
    route = route_keywords(options["models"], scale, strength, condition_noise, landmarks)
    if options.get("colour_strength") is not None:  # given: it wins over the route's default
        route["colour_strength"] = options.pop("colour_strength")
    options.pop("colour_strength", None)
    if "strategy" in route:  # the embedded refiner runs its own chain
        chosen = options.pop("strategy", None)
        if chosen not in (None, DEFAULT_STRATEGY):
            raise ValueError(f"the embedded refiner runs its own chunk chain; leave strategy out (got {chosen!r})")
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
                          speech=speech, fps=rate, size=f"{width}x{height}", **route, **options)
    finally:
        if isinstance(video, (str, Path)):
            source.close()
    if result.frames != frames:
        raise RuntimeError(f"the refined video has {result.frames} frames for {frames} input frames")
    return result
