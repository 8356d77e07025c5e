"""Which packages named in ``requirements.txt`` are not installed, found without importing any of them.

A missing package otherwise shows only when the first job reaches the code that needs it (e.g.
``No module named 'soxr'`` after the image is loaded). The pack's entry point calls
:func:`warn_missing_requirements` at import time, so the host's log says at start-up what is missing and
how to install it. Standard library only: this runs before anything else of the pack is imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys
from pathlib import Path
from types import ModuleType

# Distribution names whose import name differs (the rest import as the name with "-" -> "_").
IMPORT_NAMES = {"pillow": "PIL", "imageio-ffmpeg": "imageio_ffmpeg", "opencv-python": "cv2"}

PACK_REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_names(requirements: Path) -> list[str]:
    """Distribution names listed in a pip requirements file (comments, options and markers skipped)."""
    names = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _NAME.match(line)
        if match:
            names.append(match.group(1))
    return names


def import_name(distribution: str) -> str:
    return IMPORT_NAMES.get(distribution.lower(), distribution.replace("-", "_").replace(".", "_"))


def missing_requirements(requirements: Path) -> list[str]:
    """The distributions of ``requirements`` whose top-level module cannot be found."""
    return [name for name in requirement_names(requirements) if not _installed(import_name(name))]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or spec-less module already in sys.modules: not "missing"
        return module in sys.modules


def install_hint(requirements: Path) -> str:
    return f'"{sys.executable}" -m pip install -r "{requirements}"'


def warn_missing_requirements(requirements: Path, log: logging.Logger) -> list[str]:
    """Log one error naming every missing package and the install command; returns the missing names.

    An unreadable requirements file is logged as a warning and treated as nothing missing.
    """
    try:
        missing = missing_requirements(requirements)
    except OSError as exc:
        log.warning("TalkGen: cannot read %s (%s); not checking the requirements", requirements, exc)
        return []
    if missing:
        log.error(
            "TalkGen: missing Python packages: %s. The TalkGen nodes need them; install them into the Python "
            "that runs ComfyUI with: %s (then restart ComfyUI)",
            ", ".join(missing), install_hint(requirements),
        )
    return missing


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise ``ModuleNotFoundError`` saying what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise ModuleNotFoundError(
            f"{purpose} needs the Python package {module!r}, which is not installed; install the pack's "
            f"requirements with: {install_hint(PACK_REQUIREMENTS)}",
            name=module,
        ) from exc
