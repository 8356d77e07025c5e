"""The queue journal: one JSON line per job attempt, appended and fsynced, so a rerun knows what is done.

The journal survives a crash at any point. Every record is written as a single line followed by
``flush`` + ``fsync``; a crash can at worst leave a torn last line. Reading skips lines that do not parse,
and opening for append first terminates a torn line with a newline so the next record starts on a line of
its own. The latest record of a job key wins, so a failed attempt followed by a successful one reads as
done, and a job is only skipped when its latest record is ``done`` and every output file it listed still
exists.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from talkgen_core.queue.fingerprint import Fingerprint

Status = Literal["done", "failed"]


@dataclass(frozen=True)
class JournalRecord:
    """One finished job attempt."""

    key: str  # Job.key: hash of the inputs' contents, output name and settings
    job: int  # job number in the manifest at the time of the attempt
    row: int
    output: str
    status: Status
    reason: str = ""  # why it failed; empty when done
    seconds: float = 0.0
    outputs: tuple[str, ...] = ()  # absolute paths of the files written
    runner: str = ""  # "in-process" or the server URL
    inputs: tuple[Fingerprint, ...] = ()  # the job's files as hashed: lets a rerun skip hashing unchanged files
    finished_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def outputs_exist(self) -> bool:
        return bool(self.outputs) and all(Path(path).is_file() for path in self.outputs)

    @property
    def is_complete(self) -> bool:
        """Done, and its outputs are still on disk: a rerun can skip this job."""
        return self.status == "done" and self.outputs_exist

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json_line(cls, line: str) -> JournalRecord | None:
        """Parse one journal line; ``None`` for a torn or foreign line."""
        try:
            data: Any = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("status") not in ("done", "failed") or "key" not in data:
            return None
        try:
            return cls(
                key=str(data["key"]),
                job=int(data.get("job", 0)),
                row=int(data.get("row", 0)),
                output=str(data.get("output", "")),
                status=data["status"],
                reason=str(data.get("reason", "")),
                seconds=float(data.get("seconds", 0.0)),
                outputs=tuple(str(p) for p in data.get("outputs", ())),
                runner=str(data.get("runner", "")),
                inputs=_fingerprints(data.get("inputs")),
                finished_at=str(data.get("finished_at", "")),
            )
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class JournalContents:
    records: list[JournalRecord]
    unreadable_lines: int  # torn or foreign lines that were skipped

    def fingerprints(self) -> list[Fingerprint]:
        """Every input fingerprint recorded, oldest first (so the newest of a path wins when collected)."""
        return [fingerprint for record in self.records for fingerprint in record.inputs]

    def latest_by_key(self) -> dict[str, JournalRecord]:
        latest: dict[str, JournalRecord] = {}
        for record in self.records:
            latest[record.key] = record
        return latest


def _fingerprints(data: Any) -> tuple[Fingerprint, ...]:
    """The readable fingerprints of a record's ``inputs`` (absent in journals of older versions)."""
    parsed = [Fingerprint.from_json(item) for item in data] if isinstance(data, list) else []
    return tuple(f for f in parsed if f is not None)


def read_journal(path: str | Path) -> JournalContents:
    """All readable records of a journal file, oldest first; an absent file is an empty journal."""
    path = Path(path)
    if not path.exists():
        return JournalContents([], 0)
    records: list[JournalRecord] = []
    unreadable = 0
    with open(path, "rb") as handle:
        for raw in handle:
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            record = JournalRecord.from_json_line(line)
            if record is None:
                unreadable += 1
            else:
                records.append(record)
    return JournalContents(records, unreadable)


class JournalWriter:
    """Appends records durably. Safe to call from several threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._handle = open(self.path, "ab")
        self._lock = threading.Lock()
        if not created and self.path.stat().st_size > 0 and not _ends_with_newline(self.path):
            self._write_durably(b"\n")  # close a line torn by a crash so it stays a line of its own
        if created:
            _fsync_folder(self.path.parent)

    def append(self, record: JournalRecord) -> None:
        self._write_durably((record.to_json() + "\n").encode("utf-8"))

    def close(self) -> None:
        with self._lock:
            self._handle.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_durably(self, data: bytes) -> None:
        with self._lock:
            self._handle.write(data)
            self._handle.flush()
            os.fsync(self._handle.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _fsync_folder(folder: Path) -> None:
    """Make a newly created file's directory entry durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
