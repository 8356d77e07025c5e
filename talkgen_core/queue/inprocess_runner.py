"""Running jobs in this process through ``talkgen_core.pipeline.generate``.

The pipeline (and torch with it) is imported only when the first job runs, so a queue aimed at ComfyUI
servers, or one whose jobs are all invalid, never pays for it. On Ctrl-C the pipeline's ``cancel`` hook
stops generation between sampler steps; the job is journaled as interrupted.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from talkgen_core.files.atomic import write_bytes_atomic
from talkgen_core.files.guard import inside
from talkgen_core.queue.manifest import JOB_DIR_KEY, Job
from talkgen_core.queue.runner import JobFailed, RunnerUnavailable, output_paths

GenerateFn = Callable[..., Any]
IN_PROCESS_OUTPUT_SUFFIX = ".mp4"
REPORT_SUFFIX = ".report.json"


RESERVED_SETTINGS = ("out", "cancel", "sink", "models", "progress")  # arguments the queue itself controls


def call_pipeline_generate(generate: GenerateFn, job: Job, out: Path, cancel: threading.Event) -> Path:
    """The one place that knows ``pipeline.generate``'s signature.

    Calls ``generate(image=PATH | video=PATH, audio=[PATH, ...], out=PATH, cancel=CALLABLE, **settings)``;
    the result's ``.path`` is the written video (``None`` when nothing was written). A ``job_dir`` setting
    becomes ``job_root``: that folder inside the output's folder, holding one sub-folder per job key, so a
    rerun of an interrupted queue resumes each job and jobs sharing the setting never collide.
    """
    clash = _reserved_clash(job)
    if clash:
        raise JobFailed(clash)
    source = {job.source_kind: str(job.source)}
    audio = [str(path) for path in job.audio]
    settings = dict(job.settings)
    if JOB_DIR_KEY in settings:
        try:
            settings["job_root"] = str(inside(out.parent, str(settings.pop(JOB_DIR_KEY)), JOB_DIR_KEY))
        except ValueError as exc:
            raise JobFailed(str(exc)) from None
    result = generate(**source, audio=audio, out=str(out), cancel=cancel.is_set, **settings)
    if result.path is None:
        raise JobFailed("generate() returned without writing a video")
    if hasattr(result, "report"):  # the job's numbers (frames, DiT forwards, seconds, peak memory) beside its video
        write_bytes_atomic(report_path(out), (json.dumps(result.report(), indent=2) + "\n").encode())
    return Path(result.path)


def report_path(out: Path) -> Path:
    """Where a job's run report goes: ``NAME.report.json`` beside its video ``NAME.mp4``."""
    return out.with_name(out.stem + REPORT_SUFFIX)


def _reserved_clash(job: Job) -> str | None:
    clashing = sorted(set(job.settings) & set(RESERVED_SETTINGS))
    return f"the setting(s) {', '.join(clashing)} cannot be set from a manifest; remove the column" if clashing else None


def preflight_problems(generate: GenerateFn, job: Job) -> list[str]:
    """What would stop ``job`` in ``generate``, found without rendering (the in-process ``--dry-run``).

    Settings by :func:`talkgen_core.validation.settings_problems` (types, ranges, finite numbers, known names of
    solver, size, ...) plus names ``generate`` does not take; then every input file is decoded (the picture
    or the video's first frame, the whole audio), as the run would.
    """
    from talkgen_core.audio.decode import decode_audio
    from talkgen_core.validation import check_pictures, settings_problems

    accepted = inspect.signature(generate).parameters
    clash = _reserved_clash(job)
    problems = [clash] if clash else []
    unknown = sorted(name for name in job.settings if name not in accepted and name not in RESERVED_SETTINGS)
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        problems.append(f"unknown setting(s) {', '.join(unknown)}; generate() takes: "
                        f"{', '.join(n for n in accepted if n not in RESERVED_SETTINGS)}")
    problems += settings_problems(job.settings)
    checks: list[tuple[str, Callable[[], object]]] = [
        (f"{job.source_kind} {job.source}", lambda: check_pictures(**{job.source_kind: job.source})),
        *((f"audio {path}", lambda path=path: decode_audio(path)) for path in job.audio),
    ]
    for what, check in checks:
        try:
            check()
        except Exception as exc:  # any reader error: the job would fail the same way when it runs
            problems.append(f"{what} cannot be used: {exc}")
    return problems


class InProcessRunner:
    name = "in-process"

    def __init__(self, generate: GenerateFn | None = None) -> None:
        self._generate = generate

    def check(self) -> None:
        self._load_generate()

    def preflight(self, job: Job) -> list[str]:
        """See :func:`preflight_problems`."""
        return preflight_problems(self._load_generate(), job)

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        generate = self._load_generate()
        (out,) = output_paths(output_dir, job.output, [IN_PROCESS_OUTPUT_SUFFIX])
        out.parent.mkdir(parents=True, exist_ok=True)
        written = call_pipeline_generate(generate, job, out, cancel)
        if not written.is_file():
            raise JobFailed(f"generate() finished but its output is missing: {written}")
        report = report_path(out)
        return [written, report] if report.is_file() else [written]

    def _load_generate(self) -> GenerateFn:
        if self._generate is None:
            try:
                from talkgen_core.pipeline import generate
            except ImportError as exc:
                raise RunnerUnavailable(
                    f"in-process runs need talkgen_core.pipeline, which could not be imported ({exc}); "
                    "reinstall talkgen, or queue the jobs on a ComfyUI server with --server and --workflow"
                ) from exc
            self._generate = generate
        return self._generate
