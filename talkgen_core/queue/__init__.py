"""Batch dubbing jobs: a manifest of jobs, run on ComfyUI servers or in-process, with a crash-safe journal.

Modules, one job each:

- ``manifest``: read a CSV / JSON-lines manifest into validated :class:`Job` records.
- ``workflow``: put one job's files, output name and settings into an API-format workflow.
- ``comfyui_client``: ComfyUI's HTTP API (upload, prompt, history, view), standard library only.
- ``runner`` / ``comfyui_runner`` / ``inprocess_runner``: the runner interface and its two kinds.
- ``ray_runner``: Ray actors (one per GPU) that keep the models loaded, for ``--ray`` (Ray is optional).
- ``journal``: append-only JSON-lines record of every attempt, so reruns skip finished jobs.
- ``scheduler``: spread jobs over runners (one job in flight per runner), journal each attempt.
- ``progress`` / ``outcome``: progress lines with an ETA and the final report.
- ``batch``: the whole run as ``python -m talkgen_core queue`` performs it.
"""

from talkgen_core.queue.batch import BatchOptions, run_batch
from talkgen_core.queue.comfyui_client import ComfyUIClient, ComfyUIError
from talkgen_core.queue.comfyui_runner import ComfyUIRunner
from talkgen_core.queue.inprocess_runner import InProcessRunner
from talkgen_core.queue.journal import JournalRecord, JournalWriter, read_journal
from talkgen_core.queue.manifest import Job, ManifestError, read_manifest
from talkgen_core.queue.runner import JobFailed, Runner, RunnerUnavailable
from talkgen_core.queue.workflow import WorkflowError, fill_workflow, find_slots, load_api_workflow

__all__ = [
    "BatchOptions",
    "ComfyUIClient",
    "ComfyUIError",
    "ComfyUIRunner",
    "InProcessRunner",
    "Job",
    "JobFailed",
    "JournalRecord",
    "JournalWriter",
    "ManifestError",
    "Runner",
    "RunnerUnavailable",
    "WorkflowError",
    "fill_workflow",
    "find_slots",
    "load_api_workflow",
    "read_journal",
    "read_manifest",
    "run_batch",
]
