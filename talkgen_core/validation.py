"""Checks of a generate() call that run before any heavy work: settings, then the pictures.

Without them a bad setting or a missing image surfaces only after the models are loaded and the whole audio is
encoded, and a NaN setting is worse: ``audio_cfg=nan`` renders a black video and reports success. Each rule
lives where the value is used (``StreamSettings``, ``ChunkPlan``, ``resolve_size``, the reference readers);
this module only calls them early and adds what none of them can see (non-finite numbers). Setting names
are those of :func:`talkgen_core.pipeline.generate` keywords, which the queue manifest columns and the CLI
options (``audio_cfg`` <-> ``--audio-cfg``) follow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import torch

# settings that must be finite numbers when given (None: the preset's value)
FINITE_SETTINGS = ("fps", "shift", "text_cfg", "audio_cfg", "colour_strength", "sdedit_strength", "audio_scale")
POSITIVE_SETTINGS = ("fps", "shift")
INTEGER_SETTINGS = ("steps", "seed", "chunk_frames", "context_frames", "threads")


class SettingsError(ValueError):
    """One or more settings of a generate() call are unusable; the message names each and the fix."""


def _number_problem(name: str, value: Any) -> Optional[str]:
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() or torch.isfinite(value).all():
            return None
        return f"{name} holds NaN or infinite values; give finite numbers"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} must be a number, got {value!r}"
    if not math.isfinite(value):
        return f"{name} is {value}; give a finite number"
    if name in POSITIVE_SETTINGS and value <= 0:
        return f"{name} must be greater than 0, got {value}"
    return None


def _integer_problem(name: str, value: Any) -> Optional[str]:
    """Whole numbers; a float like 42.0 (from a spreadsheet cell) passes here, and the owning rule decides."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        return f"{name} must be a whole number, got {value!r}"
    if name in ("steps", "threads") and value < 1:
        return f"{name} must be at least 1, got {value}"
    return None


ENCODER_FILE_SETTINGS = ("text_encoder", "tokenizer", "clip_vision")  # files, or loaded encoders


def _encoder_problem(given: Mapping[str, Any]) -> Optional[str]:
    """Prompts need a text encoder (no prompt is encoded without one); encoder files must exist."""
    if ("prompt" in given or "negative_prompt" in given or "tokenizer" in given) and "text_encoder" not in given:
        return ("prompt / negative_prompt / tokenizer need a text encoder: give text_encoder (umT5-XXL, e.g. "
                "umt5_xxl_fp16.safetensors; --text-encoder on the command line)")
    wrong = [k for k in ("prompt", "negative_prompt") if k in given and not isinstance(given[k], str)]
    if wrong:
        return f"{wrong[0]} must be text, got {given[wrong[0]]!r}"
    missing = [f"{k} {given[k]}" for k in ENCODER_FILE_SETTINGS
               if isinstance(given.get(k), (str, Path)) and not Path(given[k]).exists()]
    return f"file not found: {', '.join(missing)}" if missing else None


def _rule_problem(check) -> Optional[str]:
    """Run one of the owning module's own checks; its ValueError message is the problem."""
    try:
        check()
    except ValueError as exc:
        return str(exc)
    return None


def settings_problems(settings: Mapping[str, Any]) -> list[str]:
    """Every problem of the given generate() keyword settings, one message each (empty: all usable).

    Settings not given (or None) are not checked: they take the preset's values. Keys that are not settings
    (inputs, callbacks) are ignored. For the queue's dry run and for :func:`check_settings`.
    """
    from talkgen_core.conditioning.face_window import FACE_CROP_MODES
    from talkgen_core.models.runtime import runtime_problem
    from talkgen_core.sampling.chunks import ChunkPlan
    from talkgen_core.sampling.references import ANCHORS
    from talkgen_core.sampling.schedules import SHIFT_480P
    from talkgen_core.sampling.sizes import resolve_size
    from talkgen_core.sampling.streaming import StreamSettings

    given = {k: v for k, v in settings.items() if v is not None}
    found: dict[str, Optional[str]] = {k: _number_problem(k, given[k]) for k in FINITE_SETTINGS if k in given}
    found.update({k: _integer_problem(k, given[k]) for k in INTEGER_SETTINGS if k in given})
    if "preset" in given:
        from talkgen_core.sampling.presets import get_sampling_preset

        found["preset"] = _rule_problem(lambda: get_sampling_preset(given["preset"]))
    anchor = given.get("reference_anchor", ANCHORS[0])
    if anchor not in ANCHORS:
        found["reference_anchor"] = f"reference_anchor {anchor!r} is not one of: {', '.join(ANCHORS)}"
    if given.get("face_crop", FACE_CROP_MODES[0]) not in FACE_CROP_MODES:
        found["face_crop"] = f"face_crop {given['face_crop']!r} is not one of: {', '.join(FACE_CROP_MODES)}"
    usable = {k: v for k, v in given.items() if found.get(k) is None}
    stream = {k: usable[k] for k in ("steps", "solver", "context_mode", "colour_strength", "sdedit_strength")
              if k in usable}
    if "strategy" in usable:  # the strategy's own parameters are checked by its Params (only its own are used)
        from talkgen_core.sampling.strategies import strategy_params

        from talkgen_core.sampling.guidance import APGConfig, GuidanceConfig

        stream["strategy"] = usable["strategy"]
        if usable.get("apg"):
            stream["guidance"] = GuidanceConfig(apg=APGConfig())
        found["strategy"] = _rule_problem(lambda: stream.update(strategy_params=strategy_params(stream["strategy"],
                                                                                               usable)))
        if found["strategy"]:
            del stream["strategy"]
    found["stream"] = _rule_problem(lambda: StreamSettings(shift=SHIFT_480P, **stream))
    found["encoders"] = _encoder_problem(given)
    found["runtime"] = runtime_problem(given)
    if all(found.get(k) is None for k in ("chunk_frames", "context_frames")):
        frames = {k: usable[k] for k in ("chunk_frames", "context_frames") if k in usable}
        found["frames"] = _rule_problem(lambda: ChunkPlan(1, **frames))
    if "size" in given:
        size = given["size"]
        found["size"] = (_rule_problem(lambda: resolve_size(size, (480, 832))) if isinstance(size, str)
                         else f"size must be text like 832x480, 480p or demo, got {size!r}")
    return [problem for problem in found.values() if problem]


def check_settings(settings: Mapping[str, Any]) -> None:
    """Raise :class:`SettingsError` listing every problem of ``settings`` (see :func:`settings_problems`)."""
    problems = settings_problems(settings)
    if problems:
        raise SettingsError("; ".join(problems))


def check_pictures(image: Any = None, images: Optional[Sequence[Any]] = None,
                   keyframe_times: Optional[Sequence[float]] = None, video: Any = None) -> None:
    """Refuse a reference that cannot be read: every image file is decoded, a video file opened and its first
    frame decoded (cheap next to the run; the readers raise errors naming the file)."""
    from talkgen_core.sampling.references import to_pixels
    from talkgen_core.video.reader import VideoReader

    given = [name for name, value in (("image", image), ("images", images), ("video", video)) if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of image, images (per chunk or keyframes) or video; got {given or 'none'}")
    if images is not None and len(images) == 0:
        raise ValueError("images is empty; give at least one reference image")
    if keyframe_times is not None:
        if images is None or len(keyframe_times) != len(images):
            raise ValueError(f"keyframe_times needs one time per image; got {len(keyframe_times)} times for "
                             f"{0 if images is None else len(images)} images")
        if not all(isinstance(t, (int, float)) and math.isfinite(t) and t >= 0 for t in keyframe_times):
            raise ValueError(f"keyframe_times must be finite times >= 0 in seconds, got {list(keyframe_times)}")
    for picture in [image] if image is not None else list(images or []):
        to_pixels(picture)
    if isinstance(video, (str, Path)):
        VideoReader(video).close()


def check_generate_call(settings: Mapping[str, Any], image: Any = None, images: Optional[Sequence[Any]] = None,
                        keyframe_times: Optional[Sequence[float]] = None, video: Any = None) -> None:
    """Settings first (no file is read for them), then the pictures."""
    check_settings(settings)
    check_pictures(image, images, keyframe_times, video)
