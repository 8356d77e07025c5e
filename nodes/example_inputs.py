"""The pack's example inputs in ComfyUI's input folder, so the shipped workflows run on the first Run.

LoadImage / LoadAudio / LoadVideo list only the top level of ComfyUI's input folder, so each file of
``example_inputs/`` is copied there as ``talkgen_<name>`` (the names the workflows use). A file already
there is never overwritten, whatever it holds: it may be the user's.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from . import host

EXAMPLE_INPUTS = Path(__file__).resolve().parents[1] / "example_inputs"
PREFIX = "talkgen_"
MEDIA_SUFFIXES = {".png", ".jpg", ".wav", ".mp3", ".flac", ".mp4"}

log = logging.getLogger("TalkGen")


def install_example_inputs(input_dir: Path | None = None) -> list[Path]:
    """Copy the example inputs that are missing into ``input_dir`` (ComfyUI's input folder by default);
    returns the files written. Outside ComfyUI, or where the folder is not writable, nothing is written."""
    folder = input_dir if input_dir is not None else host.input_directory()
    if folder is None:
        return []
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for source in sorted(EXAMPLE_INPUTS.iterdir()):
            target = folder / f"{PREFIX}{source.name}"
            if source.suffix.lower() not in MEDIA_SUFFIXES or target.exists():
                continue
            handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
            os.close(handle)
            shutil.copyfile(source, temp)
            try:
                os.link(temp, target)  # fails if the name appeared meanwhile: never replace a file
            except FileExistsError:
                pass
            else:
                written.append(target)
            finally:
                os.unlink(temp)
    except OSError as exc:
        log.warning("TalkGen: could not put the example inputs into %s (%s); copy example_inputs/* there as "
                    "%s<name> to run the shipped workflows as they are", folder, exc, PREFIX)
    return written
