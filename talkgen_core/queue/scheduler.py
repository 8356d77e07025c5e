"""Spreading valid jobs over runners, one worker thread per runner, and journaling each attempt.

A worker journals its attempt the moment the job ends, before taking the next one, so a crash loses at
most the jobs in flight. Printing happens only in the calling thread, fed by an event queue. A Ctrl-C
(delivered to the calling thread) stops the run cleanly: workers are told to stop, the jobs in flight
get a few seconds to report back (a ComfyUI runner cancels its prompt), and whatever is still running is
journaled as interrupted before returning; a worker that finishes later can no longer write.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from talkgen_core.queue.journal import JournalRecord, JournalWriter
from talkgen_core.queue.manifest import Job
from talkgen_core.queue.outcome import JobOutcome
from talkgen_core.queue.progress import ProgressReporter
from talkgen_core.queue.runner import JobFailed, Runner, RunnerUnavailable

_IDLE_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class _Started:
    job: Job
    runner: str


@dataclass(frozen=True)
class _Finished:
    outcome: JobOutcome


@dataclass(frozen=True)
class _Retired:
    runner: str
    reason: str
    requeued: Job | None  # the job handed back to the queue, if any


class _AttemptRecorder:
    """Writes each attempt to the journal once; refuses writes after :meth:`close` (late workers)."""

    def __init__(self, journal: JournalWriter) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self._written: set[tuple[int, str]] = set()
        self._closed = False

    def record(self, outcome: JobOutcome) -> bool:
        attempt = (outcome.job.number, outcome.runner)
        with self._lock:
            if self._closed or attempt in self._written:
                return False
            self._written.add(attempt)
            self._journal.append(
                JournalRecord(
                    key=outcome.job.key, job=outcome.job.number, row=outcome.job.row, output=outcome.job.output,
                    status="done" if outcome.status == "done" else "failed", reason=outcome.reason,
                    seconds=round(outcome.seconds or 0.0, 3), outputs=outcome.outputs, runner=outcome.runner,
                    inputs=outcome.job.fingerprints,
                )
            )
            return True

    def close(self) -> None:
        with self._lock:
            self._closed = True


@dataclass
class ScheduleResult:
    outcomes: list[JobOutcome] = field(default_factory=list)
    interrupted: bool = False


def run_jobs(
    jobs: Sequence[Job],
    runners: Sequence[Runner],
    output_dir: Path,
    journal: JournalWriter,
    progress: ProgressReporter,
    grace_seconds: float = 15.0,
) -> ScheduleResult:
    """Run every job on one of ``runners``; return one outcome per job. Never raises for a job's failure."""
    pending: queue.Queue[Job] = queue.Queue()
    for job in jobs:
        pending.put(job)
    events: queue.Queue[_Started | _Finished | _Retired] = queue.Queue()
    stop = threading.Event()
    recorder = _AttemptRecorder(journal)
    requeued: set[int] = set()  # job numbers already handed back once by a runner that broke down
    workers = [
        threading.Thread(
            target=_work,
            args=(r, pending, events, stop, output_dir, recorder, requeued),
            name=f"queue-{r.name}",
            daemon=True,
        )
        for r in runners
    ]
    for worker in workers:
        worker.start()

    result = ScheduleResult()
    in_flight: dict[str, tuple[Job, float]] = {}
    alive = len(runners)
    last_retire_reason = ""

    def record(outcome: JobOutcome) -> None:
        """For outcomes decided here (no runner left, interrupted); workers journal their own."""
        recorder.record(outcome)
        accept(outcome)

    def accept(outcome: JobOutcome) -> None:
        result.outcomes.append(outcome)
        progress.finished(outcome)

    def handle(event: _Started | _Finished | _Retired) -> None:
        nonlocal alive, last_retire_reason
        if isinstance(event, _Started):
            in_flight[event.runner] = (event.job, time.monotonic())
            progress.started(event.job, event.runner)
        elif isinstance(event, _Finished):
            in_flight.pop(event.outcome.runner, None)
            accept(event.outcome)
        else:
            if in_flight.pop(event.runner, None) is not None and event.requeued is not None:
                progress.handed_back()
            alive -= 1
            last_retire_reason = event.reason
            progress.say(f"{event.runner} takes no more jobs: {event.reason}")

    try:
        while len(result.outcomes) < len(jobs):
            try:
                handle(events.get(timeout=0.5))
            except queue.Empty:
                pass
            if alive == 0 or not any(worker.is_alive() for worker in workers):
                _handle_queued_events(events, handle)
                reason = f"no runner left ({last_retire_reason})" if last_retire_reason else "the runners stopped"
                finished = {o.job.number for o in result.outcomes}
                for job in jobs:
                    if job.number not in finished:
                        record(JobOutcome(job, "failed", reason))
    except KeyboardInterrupt:
        result.interrupted = True
        stop.set()
        _finish_after_interrupt(events, handle, in_flight, record, progress, grace_seconds)
        finished = {o.job.number for o in result.outcomes}
        result.outcomes += [
            JobOutcome(j, "not run", "stopped by Ctrl-C before it started") for j in jobs if j.number not in finished
        ]
    finally:
        stop.set()
        recorder.close()
        for worker in workers:
            worker.join(timeout=1.0)
    return result


def _work(
    runner: Runner,
    pending: queue.Queue[Job],
    events: queue.Queue,
    stop: threading.Event,
    output_dir: Path,
    recorder: _AttemptRecorder,
    requeued: set[int],
) -> None:
    """One runner's loop: take a job, run it, report; stay alive until the whole batch is finished."""
    while not stop.is_set():
        try:
            job = pending.get(timeout=_IDLE_POLL_SECONDS)
        except queue.Empty:
            continue
        if stop.is_set():
            return
        events.put(_Started(job, runner.name))
        started = time.monotonic()
        try:
            paths = runner.run(job, output_dir, stop)
        except RunnerUnavailable as exc:
            if job.number in requeued:  # it already took one runner down with it: do not offer it to a third
                outcome = JobOutcome(job, "failed", f"runner lost twice while running this job: {exc}",
                                     time.monotonic() - started, runner=runner.name)
                if recorder.record(outcome):
                    events.put(_Finished(outcome))
                events.put(_Retired(runner.name, str(exc), None))
            else:
                requeued.add(job.number)
                pending.put(job)
                events.put(_Retired(runner.name, str(exc), job))
            return
        except JobFailed as exc:
            outcome = JobOutcome(job, "failed", exc.reason, time.monotonic() - started, runner=runner.name)
        except (Exception, SystemExit) as exc:  # one bad job must never stop the others: report it, carry on
            reason = f"{type(exc).__name__}: {exc}"
            outcome = JobOutcome(job, "failed", reason, time.monotonic() - started, runner=runner.name)
        else:
            outputs = tuple(str(p.absolute()) for p in paths)
            outcome = JobOutcome(job, "done", "", time.monotonic() - started, outputs, runner.name)
        if recorder.record(outcome):
            events.put(_Finished(outcome))


def _handle_queued_events(events: queue.Queue, handle: Callable[[object], None]) -> None:
    """Handle the events already waiting, so no finished job or retirement goes unseen."""
    while True:
        try:
            handle(events.get_nowait())
        except queue.Empty:
            return


def _finish_after_interrupt(
    events: queue.Queue,
    handle: Callable[[object], None],
    in_flight: dict[str, tuple[Job, float]],
    record: Callable[[JobOutcome], None],
    progress: ProgressReporter,
    grace_seconds: float,
) -> None:
    deadline = time.monotonic() + grace_seconds
    try:
        _handle_queued_events(events, handle)  # jobs may have started since the last event was handled
        if in_flight:
            progress.say(f"Ctrl-C: stopping; waiting up to {grace_seconds:g} s for {len(in_flight)} job(s) in flight")
        while in_flight and time.monotonic() < deadline:
            try:
                handle(events.get(timeout=0.2))
            except queue.Empty:
                pass
    except KeyboardInterrupt:
        pass
    for runner, (job, started) in list(in_flight.items()):
        in_flight.pop(runner)
        seconds = time.monotonic() - started
        record(JobOutcome(job, "failed", "interrupted (Ctrl-C) while running", seconds, runner=runner))
