"""``python -m talkgen_core COMMAND``: one sub-command per module in ``talkgen_core/commands``.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int``; the module name is the
command name with ``-`` turned into ``_``. Modules are imported only when their command runs, so
``--help`` stays fast and a broken optional dependency of one command never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> one-line help. Add a command by adding a line here and a module in commands/.
COMMANDS: dict[str, str] = {
    "doctor": "report torch, devices, dtypes, optional accelerators and model files found",
    "demo": "render the demo video from example_inputs/ with the embedded tiny model",
    "generate": "render a talking video of any length from an image or a video to dub, plus audio",
    "refine": "lift a low-resolution talking video to a higher resolution, anchored on the reference image",
    "check-model": "report a DiT weight file's format, dtype, parameter count and whether it loads",
    "queue": "run a manifest of dubbing jobs on ComfyUI servers or in-process, with a resumable journal",
}


def _load(name: str):
    return importlib.import_module(f"talkgen_core.commands.{name.replace('-', '_')}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m talkgen_core", description="talkgen: audio-driven talking video of any length."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the command being run pays for its imports
            _load(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(_load(args.command).run(args) or 0)
