"""Path checks made before any heavy work: an output must not be an input, and a relative folder must stay
inside the root it is relative to."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Union

PathLike = Union[str, Path]


def _same_file(a: Path, b: Path) -> bool:
    """Same file by inode where both exist (hard links, ``..`` and symlinks included), else by resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def refuse_overwriting_inputs(out: PathLike, inputs: Iterable[tuple[str, object]], flag: str = "out") -> None:
    """Raise ``ValueError`` when ``out`` is one of the input files, so writing it cannot destroy an input.

    ``inputs`` are ``(name, value)`` pairs; values that are not paths (tensors, frames in memory) are skipped.
    """
    target = Path(out)
    for name, value in inputs:
        if isinstance(value, (str, Path)) and _same_file(target, Path(value)):
            raise ValueError(
                f"the output ({flag}) {target} is the same file as the {name} input; the output must differ from "
                f"every input, or writing it would destroy that input. Give the output another name (e.g. "
                f"{target.with_name(target.stem + '_talking.mp4').name})"
            )


def relative_problem(value: object) -> Optional[str]:
    """Why ``value`` is not a usable relative folder (absolute, ``..``, a drive), or None when it is."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        return "must be a folder name"
    text = str(value).strip().replace("\\", "/")
    if text.startswith("/") or text.startswith("~") or ":" in text:
        return "must be relative (no absolute path, no ~, no drive letter)"
    if ".." in text.split("/"):
        return "must not contain '..'"
    return None


def inside(root: PathLike, relative: PathLike, what: str) -> Path:
    """``root / relative``, refusing absolute paths and any (``..``, symlinks) that would leave ``root``.

    ``what`` names the setting in the error, e.g. "job_dir".
    """
    problem = relative_problem(relative)
    base = Path(root).resolve()
    path = (base / str(relative).strip()).resolve() if problem is None else None
    if path is None or (path != base and base not in path.parents):
        reason = problem or f"leaves {base} (through a symlink)"
        raise ValueError(f"{what} {str(relative)!r} {reason}: give a folder name inside {base}, like talkgen_jobs")
    return path
