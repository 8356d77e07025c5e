"""Running jobs in this process through ``talkgen_core.pipeline.generate``.

The pipeline (and torch with it) is imported only when the first job runs, so a queue aimed at ComfyUI
servers, or one whose jobs are all invalid, never pays for it. On Ctrl-C the pipeline's ``cancel`` hook
stops generation between sampler steps; the job is journaled as interrupted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from talkgen_core.queue.manifest import Job
from talkgen_core.queue.runner import JobFailed, RunnerUnavailable, output_paths

GenerateFn = Callable[..., Any]
IN_PROCESS_OUTPUT_SUFFIX = ".mp4"


RESERVED_SETTINGS = ("out", "cancel", "sink", "models", "progress")  # arguments the queue itself controls


def call_pipeline_generate(generate: GenerateFn, job: Job, out: Path, cancel: threading.Event) -> Path:
    """The one place that knows ``pipeline.generate``'s signature.

    Calls ``generate(image=PATH | video=PATH, audio=[PATH, ...], out=PATH, cancel=CALLABLE, **settings)``;
    the result's ``.path`` is the written video (``None`` when nothing was written).
    """
    clashing = sorted(set(job.settings) & set(RESERVED_SETTINGS))
    if clashing:
        raise JobFailed(f"the setting(s) {', '.join(clashing)} cannot be set from a manifest; remove the column")
    source = {job.source_kind: str(job.source)}
    audio = [str(path) for path in job.audio]
    result = generate(**source, audio=audio, out=str(out), cancel=cancel.is_set, **job.settings)
    if result.path is None:
        raise JobFailed("generate() returned without writing a video")
    return Path(result.path)


class InProcessRunner:
    name = "in-process"

    def __init__(self, generate: GenerateFn | None = None) -> None:
        self._generate = generate

    def check(self) -> None:
        self._load_generate()

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        generate = self._load_generate()
        (out,) = output_paths(output_dir, job.output, [IN_PROCESS_OUTPUT_SUFFIX])
        out.parent.mkdir(parents=True, exist_ok=True)
        written = call_pipeline_generate(generate, job, out, cancel)
        if not written.is_file():
            raise JobFailed(f"generate() finished but its output is missing: {written}")
        return [written]

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
