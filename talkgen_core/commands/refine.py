"""``refine``: lift a low-resolution talking video to ``--scale`` times its size, anchored on the reference image.

:func:`talkgen_core.refine.refine_video` with ``--refiner``: ``embedded`` (the demo's trained refiner, from noise,
conditioned on the video's degraded latents, its pose and the reference), ``training-free`` (the video upscaled
and denoised again from ``--strength`` at the target size by the DiT: the route for real weights) or ``auto``
(embedded for the demo model where its weights are shipped, training-free with ``--model``). The video's own
soundtrack (or ``--audio``) conditions the mouth. Also the ``--refine`` options of ``generate``, which chain both
commands.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from talkgen_core.commands.generate import add_run_arguments, add_sampling_arguments, execute, prepare_run, run_keywords
from talkgen_core.refine.detectors import DETECTORS
from talkgen_core.refine.video import DEFAULT_CONDITION_NOISE, DEFAULT_SCALE, DEFAULT_STRENGTH


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", type=Path, required=True, help="the low-resolution video (with its soundtrack)")
    parser.add_argument("--image", type=Path, required=True,
                        help="the reference image: every chunk's reference, the first frame and the colour target")
    parser.add_argument("--out", type=Path, required=True, help="output mp4 (the video's soundtrack muxed in)")
    parser.add_argument("--audio", type=Path, default=None,
                        help="speech that conditions the mouth and is muxed in (default: the video's soundtrack)")
    _add_refiner_options(parser, "")
    add_sampling_arguments(parser)
    parser.set_defaults(colour_strength=None)  # the refiner's own (refine.video.ROUTE_COLOUR_STRENGTH)
    add_run_arguments(parser)


REFINERS = ("auto", "embedded", "training-free")


def _add_refiner_options(parser, prefix: str) -> None:
    """--refiner, --scale, --strength, --condition-noise (``prefix`` "refine-": generate's chain options)."""
    parser.add_argument("--refiner", choices=REFINERS, default="auto",
                        help="embedded: the demo's trained refiner; training-free: the DiT's SDEdit at the target "
                             "size (the route for real weights); auto: embedded for the demo model where shipped")
    parser.add_argument(f"--{prefix}scale", type=float, default=DEFAULT_SCALE,
                        help=f"size factor of the refined video, each side rounded to a multiple of 16 (default "
                             f"{DEFAULT_SCALE:g}; the embedded refiner lifts 2x)")
    parser.add_argument(f"--{prefix}strength", type=float, default=None,
                        help=f"training-free route: the noise level it starts from, (0, 1), default "
                             f"{DEFAULT_STRENGTH:g} (lower keeps more of the low-resolution video); embedded: "
                             "the degradation strength, as --condition-noise")
    parser.add_argument(f"--{prefix}condition-noise", type=float, default=None,
                        help="embedded route: the noise on the degraded low-resolution latents, [0, 1), default "
                             f"{DEFAULT_CONDITION_NOISE:g} (higher trusts the low-resolution video less)")
    parser.add_argument(f"--{prefix}landmarks", choices=list(DETECTORS), default=None,
                        help="embedded route: where the pose comes from: "
                             + "; ".join(f"{name}: {text}" for name, text in DETECTORS.items()) + " (default net)")


def add_chain_arguments(parser: argparse.ArgumentParser) -> None:
    """``generate --refine``: the options of the second stage."""
    group = parser.add_argument_group("refine", "render at --size, then refine to --refine-scale times it (the "
                                                "low-resolution video is a temp beside --out)")
    group.add_argument("--refine", action="store_true", help="refine the generated video into --out")
    _add_refiner_options(group, "refine-")


def check_refiner_options(scale: float, strength: Optional[float], condition_noise: Optional[float],
                          landmarks: Optional[str], refiner: str, prefix: str) -> None:
    """Refuse an unusable size factor or noise level, or one for the route not chosen, before anything is
    rendered (the route checks the rest once its models are known)."""
    from talkgen_core.refine import refined_size

    try:
        refined_size(16, 16, scale)
    except ValueError as exc:
        raise ValueError(f"--{prefix}scale: {exc}") from None
    if strength is not None and not 0.0 < strength < 1.0:
        raise ValueError(f"--{prefix}strength must be in (0, 1), got {strength}")
    if condition_noise is not None and not 0.0 <= condition_noise < 1.0:
        raise ValueError(f"--{prefix}condition-noise must be in [0, 1), got {condition_noise}")
    if strength is not None and condition_noise is not None:
        raise ValueError(f"give --{prefix}strength or --{prefix}condition-noise, not both (for the embedded refiner "
                         "they are the same: its degradation strength)")
    if refiner == "training-free" and (condition_noise is not None or landmarks is not None):
        raise ValueError(f"--{prefix}condition-noise and --{prefix}landmarks are the embedded refiner's; the "
                         f"training-free route takes --{prefix}strength")


def refiner_models(choice: str, models: Any, device: Any) -> Any:
    """The models that refine for ``--refiner`` ``choice`` given the run's ``models`` (None: the demo's): None
    leaves the choice to refine_video (auto)."""
    if choice == "auto":
        return models
    if models is not None and not getattr(models, "is_demo", False):
        if choice == "embedded":
            raise ValueError("--refiner embedded is the demo's refiner; with --model the route is training-free")
        return models
    from talkgen_core.pipeline import load_demo_models, load_demo_refiner

    return load_demo_refiner(device or "cpu") if choice == "embedded" else load_demo_models(device or "cpu")


def check_chain_arguments(args: argparse.Namespace) -> None:
    """``generate --refine``'s options, checked with generate's own."""
    if args.refine:
        check_refiner_options(args.refine_scale, args.refine_strength, args.refine_condition_noise,
                              args.refine_landmarks, args.refiner, "refine-")


def chained(args: argparse.Namespace, generate: Callable):
    """``generate`` itself, or with ``--refine`` the two-stage chain (:func:`talkgen_core.refine.chain`)."""
    if not args.refine:
        return generate
    from talkgen_core.refine.chain import generate_refined

    refiner = None if args.refiner == "auto" else refiner_models(args.refiner, None, args.device)
    return functools.partial(generate_refined, refine_scale=args.refine_scale, refine_strength=args.refine_strength,
                             refine_condition_noise=args.refine_condition_noise,
                             refine_landmarks=args.refine_landmarks, refiner_models=refiner)


def run(args: argparse.Namespace) -> int:
    from talkgen_core.files.guard import refuse_overwriting_inputs
    from talkgen_core.refine import refine_video
    from talkgen_core.validation import check_pictures, check_settings

    def check() -> dict:
        check_settings(vars(args))
        check_refiner_options(args.scale, args.strength, args.condition_noise, args.landmarks, args.refiner, "")
        check_pictures(image=args.image)
        check_pictures(video=args.video)
        refuse_overwriting_inputs(args.out, [("--image", args.image), ("--video", args.video),
                                             ("--audio", args.audio)], flag="--out")
        return {}

    prepared = prepare_run(args, check)
    if isinstance(prepared, int):
        return prepared
    try:
        prepared.models = refiner_models(args.refiner, prepared.models, args.device)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    render = functools.partial(refine_video, args.video, args.image, audio=args.audio, scale=args.scale,
                               strength=args.strength, condition_noise=args.condition_noise,
                               landmarks=args.landmarks, **run_keywords(args))
    return execute(args, prepared, render)
