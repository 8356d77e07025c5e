"""How each job of a batch ended, as shown in the final report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from talkgen_core.queue.manifest import Job

OutcomeStatus = Literal["done", "failed", "skipped", "not run"]


@dataclass(frozen=True)
class JobOutcome:
    job: Job
    status: OutcomeStatus  # "skipped": done by an earlier run; "not run": stopped by Ctrl-C before it started
    reason: str = ""
    seconds: float | None = None
    outputs: tuple[str, ...] = ()
    runner: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status in ("done", "skipped")
