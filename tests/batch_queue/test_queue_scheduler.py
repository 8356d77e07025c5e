"""Scheduling over runners, and the progress and report text, with in-memory runners."""

from __future__ import annotations

import io
import threading
from pathlib import Path

from talkgen_core.queue.journal import JournalWriter, read_journal
from talkgen_core.queue.manifest import Job
from talkgen_core.queue.outcome import JobOutcome
from talkgen_core.queue.progress import ProgressReporter, format_duration, format_report
from talkgen_core.queue.runner import RunnerUnavailable
from talkgen_core.queue.scheduler import run_jobs


def make_jobs(count: int) -> list[Job]:
    return [
        Job(n, n + 1, "video", Path(f"/in/{n}.mp4"), (Path(f"/in/{n}.wav"),), f"out{n}") for n in range(1, count + 1)
    ]


class ScriptedRunner:
    """Writes an output per job; raises the exception given for a job number."""

    def __init__(self, name: str, raises: dict[int, BaseException] | None = None) -> None:
        self.name = name
        self.raises = raises or {}
        self.ran: list[int] = []

    def check(self) -> None:
        pass

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        self.ran.append(job.number)
        if job.number in self.raises:
            raise self.raises[job.number]
        out = output_dir / f"{job.output}.mp4"
        out.write_bytes(b"video")
        return [out]


def schedule(tmp_path: Path, jobs: list[Job], *runners: ScriptedRunner) -> tuple[list[JobOutcome], str]:
    stream = io.StringIO()
    with JournalWriter(tmp_path / "journal.jsonl") as journal:
        result = run_jobs(jobs, list(runners), tmp_path, journal, ProgressReporter(len(jobs), len(runners), stream))
    return sorted(result.outcomes, key=lambda o: o.job.number), stream.getvalue()


def test_unexpected_errors_fail_only_their_job(tmp_path: Path) -> None:
    runner = ScriptedRunner("one", raises={2: TypeError("generate() got an unexpected keyword argument 'stepz'"),
                                           3: SystemExit(3)})
    outcomes, text = schedule(tmp_path, make_jobs(4), runner)
    assert [o.status for o in outcomes] == ["done", "failed", "failed", "done"]
    assert outcomes[1].reason == "TypeError: generate() got an unexpected keyword argument 'stepz'"
    assert "FAILED job 2 (row 3)" in text and "[4/4 | 2 done, 2 failed, 0 running]" in text
    assert len(read_journal(tmp_path / "journal.jsonl").records) == 4


def test_jobs_fail_with_a_reason_when_every_runner_breaks_down(tmp_path: Path) -> None:
    broken = ScriptedRunner("broken", raises={n: RunnerUnavailable("server gone") for n in range(1, 4)})
    outcomes, text = schedule(tmp_path, make_jobs(3), broken)
    assert [o.status for o in outcomes] == ["failed"] * 3
    assert all(o.reason == "no runner left (server gone)" for o in outcomes)
    assert "broken takes no more jobs: server gone" in text


def test_a_job_that_breaks_two_runners_is_not_offered_to_a_third(tmp_path: Path) -> None:
    poison = {1: RunnerUnavailable("crashed")}
    runners = [ScriptedRunner("a", dict(poison)), ScriptedRunner("b", dict(poison)), ScriptedRunner("c", dict(poison))]
    outcomes, _ = schedule(tmp_path, make_jobs(3), *runners)
    assert outcomes[0].status == "failed" and "runner lost twice" in outcomes[0].reason
    assert [o.status for o in outcomes[1:]] == ["done", "done"]
    assert sum(r.ran.count(1) for r in runners) == 2


def test_eta_and_report() -> None:
    stream = io.StringIO()
    progress = ProgressReporter(total=4, parallel=2, stream=stream)
    jobs = make_jobs(4)
    progress.started(jobs[0], "s1")
    progress.finished(JobOutcome(jobs[0], "done", seconds=10.0, outputs=("/o/out1.mp4",), runner="s1"))
    assert progress.eta_seconds() == 15.0  # 3 jobs left at 10 s each over 2 runners
    assert "ETA 15.0 s" in stream.getvalue()
    assert format_duration(75) == "1m15s" and format_duration(3725) == "1h02m05s"

    lines = format_report([
        JobOutcome(jobs[1], "failed", "audio file not found: /in/2.wav", None),
        JobOutcome(jobs[0], "done", seconds=10.0, outputs=("/o/out1.mp4",)),
        JobOutcome(jobs[2], "skipped", outputs=("/o/out3.mp4",)),
    ])
    assert lines[0].split() == ["job", "row", "output", "status", "time", "result"]
    assert lines[2].split() == ["1", "2", "out1", "done", "10.0", "s", "/o/out1.mp4"]
    assert lines[3].split()[:4] == ["2", "3", "out2", "failed"]
    assert lines[-1] == ("queue: 1 done, 1 failed, 1 done earlier of 3 jobs; "
                         "first failure: job 2 (row 3): audio file not found: /in/2.wav")
