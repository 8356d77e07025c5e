"""Running jobs on a ComfyUI server: upload inputs, queue the filled workflow, wait, fetch outputs.

Inputs are uploaded into the server's input folder under a content-addressed name
(``<stem>_<sha256 prefix><suffix>``), so two different files called ``voice.wav`` never collide and
re-uploading the same file is harmless. See :mod:`talkgen_core.queue.workflow` for how the uploaded
names, the output name and the settings are put into the workflow.

A server that stops answering is waited for (``server_wait``: a restart with a 14B model takes minutes).
When it answers again, a job whose prompt it lost (it restarted, or forgot the prompt) is submitted again,
at most ``retries`` times, so a job that crashes the server on every try cannot hold the queue forever;
the jobs after it are not failed for it. Past ``server_wait`` the runner retires, and the scheduler hands
its job to another server.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path, PurePosixPath

from talkgen_core.queue.comfyui_client import (
    ComfyUIClient,
    ComfyUIError,
    PollSchedule,
    PromptCancelled,
    PromptFailed,
    PromptForgotten,
    PromptRejected,
    PromptTimeout,
    ServerGone,
    ServerUnreachable,
    ServerWait,
)
from talkgen_core.queue.fingerprint import file_sha256
from talkgen_core.queue.manifest import Job
from talkgen_core.queue.runner import JobFailed, RunnerUnavailable, output_paths
from talkgen_core.queue.workflow import ApiWorkflow, WorkflowError, fill_workflow

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def upload_name(path: Path) -> str:
    """``<stem>_<first 12 hex of sha256><suffix>``, with the stem reduced to safe characters."""
    stem = _UNSAFE_NAME_CHARS.sub("_", path.stem).strip("._") or "input"
    return f"{stem[:60]}_{file_sha256(path)[:12]}{path.suffix.lower()}"


class _PromptLost(Exception):
    """The server lost a submitted prompt (or its outputs) by restarting; the job may be submitted again."""


class ComfyUIRunner:
    def __init__(
        self,
        client: ComfyUIClient,
        workflow: ApiWorkflow,
        job_timeout: float = 3600.0,
        poll: PollSchedule = PollSchedule(),
        server_wait: ServerWait = ServerWait(),
        retries: int = 1,
    ) -> None:
        self.client = client
        self.workflow = workflow
        self.job_timeout = job_timeout
        self.poll = poll
        self.server_wait = server_wait
        self.retries = retries
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
        losses = 0
        while True:
            try:
                return self._run(job, output_dir, cancel)
            except ServerGone as exc:
                raise RunnerUnavailable(str(exc)) from exc
            except _PromptLost as exc:
                losses += 1
                if losses > self.retries:
                    raise JobFailed(
                        f"{exc}; the server lost this job {losses} time(s): does the job crash it? (see the "
                        "server's log; --retries N allows more tries)"
                    ) from exc
            except ServerUnreachable:
                pass  # nothing was queued yet: start over once the server answers, it costs no retry
            try:
                self.client.wait_until_answering(self.server_wait, cancel)
            except ServerGone as exc:
                raise RunnerUnavailable(str(exc)) from exc
            except PromptCancelled as exc:
                raise JobFailed("interrupted (Ctrl-C) while waiting for the server to come back") from exc

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
            outputs = self.client.wait_for_prompt(prompt_id, self.job_timeout, cancel, self.poll, self.server_wait)
        except PromptForgotten as exc:
            raise _PromptLost(str(exc)) from exc
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
        try:
            return [self.client.download(item, dest) for item, dest in zip(outputs, destinations)]
        except ServerUnreachable as exc:
            raise _PromptLost(f"the server went away while its outputs were fetched: {exc}") from exc
