"""``refine``: lift a low-resolution talking video to ``--scale`` times its size, anchored on the reference image.

The training-free route (:func:`talkgen_core.refine.refine_video`): the video is upscaled and denoised again from
``--strength`` at the target size, with its own soundtrack (or ``--audio``) conditioning the mouth. Also the
``--refine`` options of ``generate``, which chain both commands.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Callable

from talkgen_core.commands.generate import add_run_arguments, add_sampling_arguments, execute, prepare_run, run_keywords
from talkgen_core.refine.training_free import DEFAULT_SCALE, DEFAULT_STRENGTH


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", type=Path, required=True, help="the low-resolution video (with its soundtrack)")
    parser.add_argument("--image", type=Path, required=True,
                        help="the reference image: every chunk's reference, the first frame and the colour target")
    parser.add_argument("--out", type=Path, required=True, help="output mp4 (the video's soundtrack muxed in)")
    parser.add_argument("--audio", type=Path, default=None,
                        help="speech that conditions the mouth and is muxed in (default: the video's soundtrack)")
    _add_scale_strength(parser, "--scale", "--strength")
    add_sampling_arguments(parser)
    add_run_arguments(parser)


def _add_scale_strength(parser, scale: str, strength: str) -> None:
    parser.add_argument(scale, type=float, default=DEFAULT_SCALE,
                        help=f"size factor of the refined video, each side rounded to a multiple of 16 (default "
                             f"{DEFAULT_SCALE:g})")
    parser.add_argument(strength, type=float, default=DEFAULT_STRENGTH,
                        help="noise level the refiner starts from, (0, 1): lower keeps more of the low-resolution "
                             f"video, higher adds more detail (default {DEFAULT_STRENGTH:g})")


def add_chain_arguments(parser: argparse.ArgumentParser) -> None:
    """``generate --refine``: the options of the second stage."""
    group = parser.add_argument_group("refine", "render at --size, then refine to --refine-scale times it (the "
                                                "low-resolution video is a temp beside --out)")
    group.add_argument("--refine", action="store_true", help="refine the generated video into --out")
    _add_scale_strength(group, "--refine-scale", "--refine-strength")


def check_scale_strength(scale: float, strength: float, flags: tuple[str, str]) -> None:
    """Refuse an unusable size factor or start level before anything is rendered."""
    from talkgen_core.refine import refined_size

    try:
        refined_size(16, 16, scale)
    except ValueError as exc:
        raise ValueError(f"{flags[0]}: {exc}") from None
    if not 0.0 < strength < 1.0:
        raise ValueError(f"{flags[1]} must be in (0, 1), got {strength}")


def check_chain_arguments(args: argparse.Namespace) -> None:
    """``generate --refine``'s options, checked with generate's own."""
    if args.refine:
        check_scale_strength(args.refine_scale, args.refine_strength, ("--refine-scale", "--refine-strength"))


def chained(args: argparse.Namespace, generate: Callable):
    """``generate`` itself, or with ``--refine`` the two-stage chain (:func:`talkgen_core.refine.chain`)."""
    if not args.refine:
        return generate
    from talkgen_core.refine.chain import generate_refined

    return functools.partial(generate_refined, refine_scale=args.refine_scale, refine_strength=args.refine_strength)


def run(args: argparse.Namespace) -> int:
    from talkgen_core.files.guard import refuse_overwriting_inputs
    from talkgen_core.refine import refine_video
    from talkgen_core.validation import check_pictures, check_settings

    def check() -> dict:
        check_settings(vars(args))
        check_scale_strength(args.scale, args.strength, ("--scale", "--strength"))
        check_pictures(image=args.image)
        check_pictures(video=args.video)
        refuse_overwriting_inputs(args.out, [("--image", args.image), ("--video", args.video),
                                             ("--audio", args.audio)], flag="--out")
        return {}

    prepared = prepare_run(args, check)
    if isinstance(prepared, int):
        return prepared
    render = functools.partial(refine_video, args.video, args.image, audio=args.audio, scale=args.scale,
                               strength=args.strength, **run_keywords(args))
    return execute(args, prepared, render)
