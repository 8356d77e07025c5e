"""What every job runner provides, and the two ways a job attempt can end badly.

A runner executes one job at a time. The scheduler gives each runner its own worker thread, so several
runners (one per ComfyUI server) work in parallel while each has at most one job in flight.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from talkgen_core.queue.manifest import Job


class JobFailed(Exception):
    """This job cannot be done; ``reason`` goes into the journal and the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RunnerUnavailable(Exception):
    """The runner itself is gone (server unreachable, pipeline missing); the job goes back to the queue
    for another runner, and this runner takes no more jobs."""


class Runner(Protocol):
    name: str  # shown in progress lines and stored in the journal

    def check(self) -> None:
        """Raise :class:`RunnerUnavailable` when this runner cannot run jobs at all."""

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        """Run one valid job; return the output files written under ``output_dir``.

        Raise :class:`JobFailed` with a reason when the job fails, :class:`RunnerUnavailable` when the
        runner broke down. ``cancel`` is set on Ctrl-C; a runner that can stop early should.
        """


def output_paths(output_dir: Path, output_name: str, suffixes: list[str]) -> list[Path]:
    """Local names for a job's outputs: ``NAME.ext`` for one file, ``NAME_1.ext``, ``NAME_2.ext``... for several."""
    if len(suffixes) == 1:
        return [output_dir / f"{output_name}{suffixes[0]}"]
    return [output_dir / f"{output_name}_{index}{suffix}" for index, suffix in enumerate(suffixes, start=1)]
