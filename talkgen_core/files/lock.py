"""An exclusive lock on a folder, so two runs never write one job folder at once.

The lock is ``fcntl.flock`` on ``FOLDER/.lock``: the kernel drops it when the holding process exits in any
way (kill -9 included), so a lock left by a dead process is simply taken over; there are no stale lock files
to clean up. The file records who holds it, for the error the second run gets.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Optional, Union

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not protected from each other
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


class FolderInUse(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """Hold ``folder``'s lock for the ``with`` block (the folder is created).

    Args:
        folder: the folder to lock.
        what: how errors name the folder (e.g. "job folder").
    """

    def __init__(self, folder: Union[str, Path], what: str = "folder") -> None:
        self.folder = Path(folder)
        self.what = what
        self._fd: Optional[int] = None

    def __enter__(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise FolderInUse(
                    f"{self.what} {self.folder} is in use by {holder}; wait for that run to finish or stop it, "
                    f"or give this run another {self.what}"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, kind: Optional[type], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None
