"""Progress lines while the queue runs, and the report table at the end.

Every line is flushed as it is written, so progress interleaves correctly with error output when both go
to one terminal or log.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from talkgen_core.queue.manifest import Job
from talkgen_core.queue.outcome import JobOutcome


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class ProgressReporter:
    """Counts finished attempts and estimates the time left from their mean duration."""

    def __init__(self, total: int, parallel: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.parallel = max(1, parallel)
        self.stream = stream or sys.stdout
        self.done = 0
        self.failed = 0
        self.running = 0
        self._done_durations: list[float] = []
        self._failed_durations: list[float] = []

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def eta_seconds(self) -> float | None:
        """Mean time of the finished jobs (successful ones when there are any) times the jobs left, per runner."""
        durations = self._done_durations or self._failed_durations
        if not durations:
            return None
        remaining = self.total - self.done - self.failed
        return sum(durations) / len(durations) * remaining / self.parallel

    def started(self, job: Job, runner: str) -> None:
        self.running += 1
        self.say(f"{self._counts()} start {job.label} '{job.output}' on {runner}{self._eta()}")

    def finished(self, outcome: JobOutcome) -> None:
        self.running = max(0, self.running - 1)
        if outcome.seconds is not None:
            (self._done_durations if outcome.status == "done" else self._failed_durations).append(outcome.seconds)
        took = format_duration(outcome.seconds)
        if outcome.status == "done":
            self.done += 1
            detail = f"done {outcome.job.label} '{outcome.job.output}' in {took} -> {', '.join(outcome.outputs)}"
        else:
            self.failed += 1
            detail = f"FAILED {outcome.job.label} '{outcome.job.output}' after {took}: {outcome.reason}"
        self.say(f"{self._counts()} {detail}{self._eta()}")

    def handed_back(self) -> None:
        """A running job went back to the queue (its runner broke down); it will start again elsewhere."""
        self.running = max(0, self.running - 1)

    def _counts(self) -> str:
        finished = self.done + self.failed
        return f"[{finished}/{self.total} | {self.done} done, {self.failed} failed, {self.running} running]"

    def _eta(self) -> str:
        eta = self.eta_seconds()
        if eta is None or self.done + self.failed >= self.total:
            return ""
        return f" | ETA {format_duration(eta)}"


def format_report(outcomes: Sequence[JobOutcome]) -> list[str]:
    """The final table (job, row, output, status, time, outputs or reason) and a summary line.

    The summary comes last and, when anything failed, repeats the first failure's reason, so a caller
    that reads only the last line still learns what went wrong.
    """
    header = ("job", "row", "output", "status", "time", "result")
    rows = [
        (
            str(o.job.number),
            str(o.job.row),
            o.job.output or "-",
            o.status,
            format_duration(o.seconds),
            ", ".join(o.outputs) if o.succeeded else o.reason,
        )
        for o in sorted(outcomes, key=lambda o: o.job.number)
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths)) + "  " + cells[-1]

    lines = [line(header), line(["-" * w for w in widths] + ["-" * 6]), *(line(r) for r in rows)]
    lines.append(summary_line(outcomes))
    return lines


def summary_line(outcomes: Sequence[JobOutcome]) -> str:
    count = {status: sum(o.status == status for o in outcomes) for status in ("done", "failed", "skipped", "not run")}
    total = len(outcomes)
    if count["done"] + count["skipped"] == total:
        earlier = f" ({count['skipped']} done by an earlier run)" if count["skipped"] else ""
        return f"queue: all {total} jobs done{earlier}"
    parts = [f"{count['done']} done", f"{count['failed']} failed"]
    if count["skipped"]:
        parts.append(f"{count['skipped']} done earlier")
    if count["not run"]:
        parts.append(f"{count['not run']} not run")
    text = f"queue: {', '.join(parts)} of {total} jobs"
    first_failure = next((o for o in sorted(outcomes, key=lambda o: o.job.number) if o.status == "failed"), None)
    if first_failure is not None:
        text += f"; first failure: {first_failure.job.label}: {first_failure.reason}"
    return text
