"""Command line: ``python -m talkgen_core.train --minutes N --out DIR [--resume] [--config NAME] [--vae-from FILE]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from talkgen_core.train.config import TRAIN_CONFIGS, get_train_config
from talkgen_core.train.loop import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m talkgen_core.train",
        description="Train the embedded demo model (VAE, then DiT) on procedurally rendered talking faces.",
    )
    parser.add_argument("--minutes", type=float, required=True, help="total wall-clock budget for all stages")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, train_log.jsonl, weights/")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--config", default="demo", choices=sorted(TRAIN_CONFIGS), help="training recipe")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's)")
    parser.add_argument("--seed", type=int, default=None, help="model init and batch seed (default: the config's)")
    parser.add_argument("--vae-from", default=None, metavar="FILE",
                        help="an earlier run's exported demo-vae.safetensors (same VAE config), used frozen instead "
                             "of the VAE stage; --minutes is then the DiT stages' budget")
    parser.add_argument("--clips", type=int, default=None, help="training clips to render (default: the config's)")
    args = parser.parse_args(argv)
    config = get_train_config(args.config)
    overrides = (("threads", args.threads), ("seed", args.seed), ("num_clips", args.clips))
    changes = {k: v for k, v in overrides if v is not None}
    if changes:
        config = dataclasses.replace(config, **changes)
    summary = train(config, args.out, args.minutes, resume=args.resume, vae_from=args.vae_from)
    print(json.dumps(dataclasses.asdict(summary), indent=1), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
