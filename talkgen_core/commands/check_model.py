"""``check-model``: what a DiT weight file (set) is and whether it loads, without loading the tensors.

The ``format:`` line names a quantised or distilled family when the layout is one (``models/quant_formats.py``:
ComfyUI scaled fp8, MeiGen InfiniteTalk int8 / fp8 (optimum-quanto), LightX2V distilled int8 / fp8,
SoulX-FlashTalk).

Example: ``python -m talkgen_core check-model Wan2.1-I2V-14B-480P/diffusion_pytorch_model.safetensors.index.json
infinitetalk_single.safetensors``
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        help="weight files in load order: base model (a single file, shards, their *.index.json or folder), "
        "then adapter files",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="check against this DiT config name (default: find the one the keys match)",
    )


def run(args: argparse.Namespace) -> int:
    from talkgen_core.models.checkpoint import describe_checkpoint

    try:
        report = describe_checkpoint(args.files, config=args.config)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    print(report.text())
    return 0 if report.loads else 1
