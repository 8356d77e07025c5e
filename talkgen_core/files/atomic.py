"""Temp files no one can predict, and outputs that appear only when complete.

Every file talkgen writes beside a user's files goes through :class:`TempFile`:

* the temp is made by :func:`tempfile.mkstemp` in the target's own folder: an unpredictable name created with
  ``O_EXCL`` (mode 0600), so a symlink planted under a predictable name (the old ``.out.audio.f32``,
  ``.manifest.json.tmp``) cannot redirect the write, and the final rename never crosses file systems;
* :meth:`TempFile.commit` flushes it to disk and renames it over the target, so an older file there survives a
  crash, a kill, a full disk or Ctrl-C, and a partial file never carries the target's name;
* :meth:`TempFile.discard` removes it (scratch files, or an output given up).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (changing it races other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class TempFile:
    """A new empty file beside ``target``, named ``.{target.name}.<random>{suffix}``, created exclusively.

    ``handle`` is open for writing; programs that write by name (ffmpeg, safetensors) use ``path``.

    Args:
        target: the file this temp may become (its folder is created).
        suffix: the temp's ending (programs like ffmpeg pick the format by it); default: the target's suffix.
    """

    def __init__(self, target: Union[str, Path], suffix: Optional[str] = None) -> None:
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.",
                                    suffix=self.target.suffix if suffix is None else suffix,
                                    dir=self.target.parent)
        self.path = Path(name)
        self.handle: BinaryIO = os.fdopen(fd, "wb")

    def commit(self) -> Path:
        """Flush the temp to disk and rename it over the target (atomic); returns the target. On failure (a
        full disk shows here) the temp is removed and the target left as it was."""
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())  # fsync is per file: it also covers what other programs wrote by name
            self.handle.close()
            os.chmod(self.path, 0o666 & ~_umask())  # an ordinary file's mode, not mkstemp's 0600
            os.replace(self.path, self.target)
        except BaseException:
            self.discard()
            raise
        return self.target

    def discard(self) -> None:
        """Remove the temp (idempotent)."""
        self.handle.close()
        self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: Union[str, Path], suffix: Optional[str] = None) -> Iterator[Path]:
    """Yield a temp path beside ``target``; it replaces ``target`` when the block ends normally and is removed
    when the block raises (an older ``target`` is then kept as it was)."""
    temp = TempFile(target, suffix)
    try:
        yield temp.path
    except BaseException:
        temp.discard()
        raise
    temp.commit()


def write_bytes_atomic(target: Union[str, Path], data: bytes) -> None:
    """Replace ``target`` with ``data`` in one step: readers see the old file or the new one, never a part."""
    temp = TempFile(target)
    try:
        temp.handle.write(data)
    except BaseException:
        temp.discard()
        raise
    temp.commit()
