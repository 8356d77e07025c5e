"""Running jobs on a ComfyUI server: upload inputs, queue the filled workflow, wait, fetch outputs.

Inputs are uploaded into the server's input folder under a content-addressed name
(``<stem>_<sha256 prefix><suffix>``), so two different files called ``voice.wav`` never collide and
re-uploading the same file is harmless. See :mod:`talkgen_core.queue.workflow` for how the uploaded
names, the output name and the settings are put into the workflow.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path, PurePosixPath

from talkgen_core.queue.comfyui_client import (
    ComfyUIClient,
    ComfyUIError,
    PollSchedule,
    PromptCancelled,
    PromptFailed,
    PromptRejected,
    PromptTimeout,
    ServerUnreachable,
)
from talkgen_core.queue.manifest import Job
from talkgen_core.queue.runner import JobFailed, RunnerUnavailable, output_paths
from talkgen_core.queue.workflow import ApiWorkflow, WorkflowError, fill_workflow

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def upload_name(path: Path) -> str:
    """``<stem>_<first 12 hex of sha256><suffix>``, with the stem reduced to safe characters."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    stem = _UNSAFE_NAME_CHARS.sub("_", path.stem).strip("._") or "input"
    return f"{stem[:60]}_{digest.hexdigest()[:12]}{path.suffix.lower()}"


class ComfyUIRunner:
    def __init__(
        self,
        client: ComfyUIClient,
        workflow: ApiWorkflow,
        job_timeout: float = 3600.0,
        poll: PollSchedule = PollSchedule(),
    ) -> None:
        self.client = client
        self.workflow = workflow
        self.job_timeout = job_timeout
        self.poll = poll
        self.name = client.base_url

    def check(self) -> None:
        """The server answers, and knows every node class the workflow uses."""
        try:
            known = self.client.object_info()
        except ComfyUIError as exc:
            raise RunnerUnavailable(f"{self.name} is not usable: {exc}") from exc
        missing = sorted({node["class_type"] for node in self.workflow.values()} - set(known))
        if missing:
            raise RunnerUnavailable(
                f"{self.name} does not know the node classes {', '.join(missing)}; install the node packs "
                "the workflow needs (talkgen for TalkGen* nodes) on that server and restart it"
            )

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        try:
            return self._run(job, output_dir, cancel)
        except ServerUnreachable as exc:
            raise RunnerUnavailable(str(exc)) from exc

    def _run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        assert job.source is not None, "only valid jobs reach a runner"
        source_ref = self.client.upload_file(job.source, upload_name(job.source)).reference
        audio_refs = [self.client.upload_file(path, upload_name(path)).reference for path in job.audio]
        try:
            prompt = fill_workflow(
                self.workflow,
                source_kind=job.source_kind,
                source_name=source_ref,
                audio_names=audio_refs,
                output_prefix=job.output,
                settings=job.settings,
            )
        except WorkflowError as exc:
            raise JobFailed(str(exc)) from exc
        try:
            prompt_id = self.client.queue_prompt(prompt)
        except PromptRejected as exc:
            raise JobFailed(str(exc)) from exc
        try:
            outputs = self.client.wait_for_prompt(prompt_id, self.job_timeout, cancel, self.poll)
        except PromptFailed as exc:
            raise JobFailed(f"{self.name}: {exc}") from exc
        except PromptTimeout as exc:
            self.client.cancel_prompt(prompt_id)
            raise JobFailed(f"{exc}; raise --timeout if the job needs longer") from exc
        except PromptCancelled as exc:
            self.client.cancel_prompt(prompt_id)
            raise JobFailed("interrupted (Ctrl-C); the prompt was removed from the server") from exc
        if not outputs:
            raise JobFailed("the workflow finished but saved no files; does it end in SaveVideo or SaveImage?")
        suffixes = [PurePosixPath(item.filename).suffix for item in outputs]
        destinations = output_paths(output_dir, job.output, suffixes)
        return [self.client.download(item, dest) for item, dest in zip(outputs, destinations)]
