"""Knowing a job's input files by their content, cheaply enough to do on every run.

The journal keys a job on what its files contain, so a file replaced under the same name makes the job run
again. Hashing every video on every rerun would be slow, so a digest is reused while the file's size and
``mtime_ns`` are those it had when it was hashed. Like git's "racily clean" index entries, a digest taken
less than :data:`RACY_NS` after the file's last change is not reused: a rewrite inside the file system's
timestamp granularity would keep the same mtime, so such files are hashed again until they have aged.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RACY_NS = 2_000_000_000  # 2 s: coarser than any file system's timestamp tick
_BLOCK = 1 << 20


@dataclass(frozen=True)
class Fingerprint:
    """One input file as it was when hashed."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    hashed_ns: int  # wall clock (time.time_ns) when the bytes were read

    def still_describes(self, stat: os.stat_result) -> bool:
        """The file has the size and mtime it had when hashed, and was not changed just before hashing."""
        return (
            stat.st_size == self.size
            and stat.st_mtime_ns == self.mtime_ns
            and self.hashed_ns - self.mtime_ns >= RACY_NS
        )

    @classmethod
    def from_json(cls, data: object) -> Fingerprint | None:
        """Read back ``dataclasses.asdict(fingerprint)``; ``None`` for anything else."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["path"]), int(data["size"]), int(data["mtime_ns"]), str(data["sha256"]),
                       int(data["hashed_ns"]))
        except (KeyError, TypeError, ValueError):
            return None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks so any size fits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


class ContentHasher:
    """Fingerprints files, reusing known digests (e.g. from the journal) for files that did not change."""

    def __init__(self, known: Iterable[Fingerprint] = ()) -> None:
        self._known = {fingerprint.path: fingerprint for fingerprint in known}
        self.hashed: list[str] = []  # paths whose bytes were read by this hasher (tests, reports)

    def fingerprint(self, path: Path) -> Fingerprint:
        """The file's fingerprint; raises ``OSError`` when it cannot be read."""
        key = str(path)
        stat = os.stat(path)
        known = self._known.get(key)
        if known is not None and known.still_describes(stat):
            return known
        hashed_ns = time.time_ns()
        fingerprint = Fingerprint(key, stat.st_size, stat.st_mtime_ns, file_sha256(path), hashed_ns)
        self.hashed.append(key)
        self._known[key] = fingerprint
        return fingerprint
