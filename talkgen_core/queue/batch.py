"""One batch run from start to end: read and check the manifest, consult the journal, run, report.

Exit statuses: 0 when every job is done (now or by an earlier run), 1 when any job failed, 2 when the
batch could not start (bad manifest, bad workflow, no usable runner), 130 after Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from talkgen_core.queue.comfyui_client import ComfyUIClient, PollSchedule, ServerWait
from talkgen_core.queue.comfyui_runner import ComfyUIRunner
from talkgen_core.queue.fingerprint import ContentHasher
from talkgen_core.queue.inprocess_runner import InProcessRunner
from talkgen_core.queue.journal import JournalRecord, JournalWriter, read_journal
from talkgen_core.queue.manifest import Job, ManifestError, read_manifest
from talkgen_core.queue.outcome import JobOutcome
from talkgen_core.queue.progress import ProgressReporter, format_report
from talkgen_core.queue.ray_runner import RayOptions, ray_runners
from talkgen_core.queue.runner import Runner, RunnerUnavailable
from talkgen_core.queue.scheduler import run_jobs
from talkgen_core.queue.workflow import ApiWorkflow, WorkflowError, fill_workflow, load_api_workflow

EXIT_ALL_DONE = 0
EXIT_SOME_FAILED = 1
EXIT_CANNOT_START = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class BatchOptions:
    manifest: Path
    workflow: Path | None = None  # API-format workflow, needed with servers
    servers: tuple[str, ...] = ()  # ComfyUI base URLs; none = in-process
    output_dir: Path | None = None  # default: the manifest's folder
    journal: Path | None = None  # default: OUTPUT_DIR/<manifest stem>.journal.jsonl
    job_timeout: float = 3600.0
    dry_run: bool = False
    poll: PollSchedule = PollSchedule()
    server_wait: ServerWait = ServerWait()  # how long a silent server is waited for
    retries: int = 1  # times a job is queued again after its server (or Ray worker) lost it
    ray: RayOptions | None = None  # run on a Ray cluster (see queue.ray_runner) instead of in this process

    @property
    def resolved_output_dir(self) -> Path:
        return (self.output_dir or self.manifest.parent).absolute()

    @property
    def resolved_journal(self) -> Path:
        return self.journal or self.resolved_output_dir / f"{self.manifest.stem}.journal.jsonl"


class BatchSetupError(ValueError):
    """The batch cannot start; the message names the input and the fix."""


def run_batch(options: BatchOptions, runners: Sequence[Runner] | None = None, stream: TextIO | None = None) -> int:
    """Run a whole batch and print progress and the report; returns the exit status.

    ``runners`` replaces the runners built from ``options`` (tests, embedding).
    """
    out = stream or sys.stdout
    try:
        jobs, workflow = _load_inputs(options, check_workflow=runners is None)
    except (BatchSetupError, ManifestError, WorkflowError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CANNOT_START

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    journal_path = options.resolved_journal
    previous = read_journal(journal_path)
    if previous.unreadable_lines:
        say(f"journal {journal_path}: ignored {previous.unreadable_lines} unreadable line(s) (a write torn by a crash)")
    hasher = ContentHasher(previous.fingerprints())
    jobs = [_identified(job, hasher) for job in jobs]
    latest = previous.latest_by_key()

    outcomes: list[JobOutcome] = []
    invalid = [job for job in jobs if not job.runnable]
    to_run: list[Job] = []
    for job in jobs:
        earlier = latest.get(job.key)
        if job.runnable and earlier is not None and earlier.is_complete:
            outcomes.append(JobOutcome(job, "skipped", "", None, earlier.outputs, earlier.runner))
        elif job.runnable:
            to_run.append(job)
    say(
        f"queue: {len(jobs)} job(s) in {options.manifest}: {len(to_run)} to run, "
        f"{len(outcomes)} done by an earlier run, {len(invalid)} with problems"
    )
    for job in invalid:
        say(f"  {job.problem_text()}")
    if options.dry_run:
        return _dry_run(options, to_run, invalid, say)

    built: Sequence[Runner] = ()
    if to_run and runners is None:
        try:
            runners = built = _usable_runners(options, workflow, say)
        except BatchSetupError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_CANNOT_START

    interrupted = False
    with JournalWriter(journal_path) as journal:
        for job in invalid:
            journal.append(JournalRecord(key=job.key, job=job.number, row=job.row, output=job.output,
                                         status="failed", reason="; ".join(job.problems)))
            outcomes.append(JobOutcome(job, "failed", "; ".join(job.problems)))
        if to_run:
            assert runners is not None
            progress = ProgressReporter(len(to_run), parallel=len(runners), stream=out)
            result = run_jobs(to_run, runners, options.resolved_output_dir, journal, progress)
            outcomes += result.outcomes
            interrupted = result.interrupted
    for runner in built:  # runners holding resources (Ray actors) give them back
        getattr(runner, "close", lambda: None)()

    for line in format_report(outcomes):
        say(line)
    if interrupted:
        say(f"queue: stopped by Ctrl-C; the journal {journal_path} is up to date, rerun to continue")
        return EXIT_INTERRUPTED
    return EXIT_ALL_DONE if all(o.succeeded for o in outcomes) else EXIT_SOME_FAILED


def _dry_run(options: BatchOptions, to_run: list[Job], invalid: list[Job], say) -> int:
    """Show the plan; in-process, first check each job's settings and files as ``generate`` would use them
    (servers check their own when the prompt is queued; the workflow fit was checked on loading)."""
    bad = len(invalid)
    preflight = None
    if not options.servers and to_run:
        runner = InProcessRunner()
        try:
            runner.check()  # the pipeline imports
        except RunnerUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_CANNOT_START
        preflight = runner.preflight
    for job in to_run:
        problems = preflight(job) if preflight is not None else []
        if problems:
            bad += 1
            say(f"  {replace(job, problems=tuple(problems)).problem_text()}")
        else:
            say(f"  would run {job.label} '{job.output}'")
    return EXIT_ALL_DONE if not bad else EXIT_SOME_FAILED


def _load_inputs(options: BatchOptions, check_workflow: bool) -> tuple[list[Job], ApiWorkflow | None]:
    if check_workflow and options.servers and options.workflow is None:
        raise BatchSetupError("--server needs --workflow FILE.json (an API-format workflow to queue, e.g. workflows/api/NAME.json)")
    if check_workflow and options.workflow is not None and not options.servers:
        raise BatchSetupError(
            "--workflow is used only with --server; in-process jobs call talkgen_core.pipeline.generate "
            "directly. Add --server URL or drop --workflow"
        )
    jobs = read_manifest(options.manifest)
    workflow = load_api_workflow(options.workflow) if options.workflow is not None else None
    if workflow is not None:
        jobs = [_check_against_workflow(job, workflow) for job in jobs]
    return jobs, workflow


def _identified(job: Job, hasher: ContentHasher) -> Job:
    """The job with its files fingerprinted by content (see ``Job.key``); an unreadable file is a problem."""
    if not job.runnable or job.source is None:
        return job
    try:
        fingerprints = tuple(hasher.fingerprint(path) for path in (job.source, *job.audio))
    except OSError as exc:
        problem = f"cannot read {exc.filename}: {exc.strerror or exc}; check that the file is readable"
        return replace(job, problems=job.problems + (problem,))
    return replace(job, fingerprints=fingerprints)


def _check_against_workflow(job: Job, workflow: ApiWorkflow) -> Job:
    """Fill the workflow with local file names to find slot and setting mismatches before anything runs."""
    if not job.runnable or job.source is None:
        return job
    try:
        fill_workflow(
            workflow,
            source_kind=job.source_kind,
            source_name=job.source.name,
            audio_names=[path.name for path in job.audio],
            output_prefix=job.output,
            settings=job.settings,
        )
    except WorkflowError as exc:
        return replace(job, problems=job.problems + (f"does not fit the workflow: {exc}",))
    return job


def _usable_runners(options: BatchOptions, workflow: ApiWorkflow | None, say) -> list[Runner]:
    candidates: list[Runner]
    if options.servers:
        assert workflow is not None
        try:
            clients = [ComfyUIClient(url) for url in dict.fromkeys(options.servers)]  # one runner per server
        except ValueError as exc:
            raise BatchSetupError(str(exc)) from exc
        candidates = [
            ComfyUIRunner(c, workflow, options.job_timeout, options.poll, options.server_wait, options.retries)
            for c in clients
        ]
    elif options.ray is not None:
        try:
            candidates = list(ray_runners(options.ray, options.retries))
        except (RunnerUnavailable, ImportError) as exc:
            raise BatchSetupError(str(exc)) from exc
    else:
        candidates = [InProcessRunner()]
    usable: list[Runner] = []
    reasons: list[str] = []
    for runner in candidates:
        try:
            runner.check()
        except RunnerUnavailable as exc:
            reasons.append(str(exc))
            say(f"skipping {runner.name}: {exc}")
            continue
        usable.append(runner)
    if not usable:
        raise BatchSetupError("no runner can take jobs: " + " | ".join(reasons))
    return usable
