"""Running queue jobs on a Ray cluster: one actor per GPU (or per N CPUs) that loads the models once.

Each actor is a long-lived Ray worker process that loads the models when it starts and then renders job after
job through the in-process runner (``talkgen_core.pipeline.generate`` with ``models=`` its own). On the
submitting machine every actor is driven by one :class:`RayActorRunner`, one of the scheduler's runners, so
the scheduler hands each job to an idle actor and writes the journal there, as it does for ComfyUI servers:
the journal on the submitting machine stays the one record, and the workers never write it.

Where the files live (:attr:`RayOptions.shared_storage`):

- copy (default): the job's input files travel with it through Ray's object store; the actor renders in a
  workspace in its node's temp folder (``<tmp>/talkgen-ray/<job key>``) and sends the outputs back, and the
  runner writes them atomically into the output folder. Works on any cluster; every input and output crosses
  the network once.
- shared storage: every node sees the manifest's inputs and the output folder at the same paths (an NFS or
  similar mount); the actor reads the inputs and writes the outputs and job folders in place.

A worker lost mid-job (its process killed, its node gone): the runner starts a replacement actor and gives it
the job again, up to ``retries`` times (``--retries``), then fails the job, like a ComfyUI server that keeps
losing a prompt. A job with a ``job_dir`` setting resumes from its last finished chunk when its job folder
survived the loss: always on shared storage; in copy mode only when the replacement runs on the same node.
A job that fails by itself (a bad file or setting) fails at once with its error, as in-process.

Ray is imported only when a Ray run starts, so the rest of the queue works without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from talkgen_core.files.atomic import write_bytes_atomic
from talkgen_core.files.guard import inside
from talkgen_core.queue.inprocess_runner import InProcessRunner
from talkgen_core.queue.manifest import Job
from talkgen_core.queue.runner import JobFailed, RunnerUnavailable

RAY_INSTALL_HINT = 'pip install "talkgen[ray]"'
REPORT_SUFFIX = ".ray.json"  # the per-job report written beside the job's output
_WAIT_SECONDS = 0.2
_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its error texts

ModelLoader = Callable[..., Any]  # loader(device="cpu" | "cuda") -> talkgen_core.pipeline.Models, e.g.
# functools.partial(pipeline.load_models, [dit, adapter], vae, audio_encoder) for real checkpoints


class RayNotInstalled(ImportError):
    """``--ray`` was asked for but Ray is not importable; the message names the extra to install."""


def import_ray() -> Any:
    """The ``ray`` module, or :class:`RayNotInstalled` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalled(
            f"--ray needs Ray, which is not installed ({exc}); install it with {RAY_INSTALL_HINT}"
        ) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    address: str = "auto"  # "auto": RAY_ADDRESS, a `ray start` cluster here, else a local one for the run
    actors: int | None = None  # default: one per GPU of the cluster, else one per cpus_per_actor CPUs
    cpus_per_actor: float = 1.0  # used on clusters without GPUs
    shared_storage: bool = False  # workers see the inputs and the output folder at the same paths
    ready_timeout: float = 600.0  # seconds an actor may take to be placed and load its models


@dataclass(frozen=True)
class ActorPlan:
    count: int
    resources: dict[str, float]  # Ray resources each actor holds, e.g. {"num_gpus": 1}


def plan_actors(cluster: dict[str, float], options: RayOptions) -> ActorPlan:
    """How many actors the cluster's resources (``ray.cluster_resources()``) hold, and what each takes.

    One actor per GPU when the cluster has GPUs, else one per ``cpus_per_actor`` CPUs; ``options.actors``
    sets the count (actors beyond what the cluster holds wait for room and fail ``ready_timeout``).
    """
    if options.cpus_per_actor <= 0:
        raise RunnerUnavailable(f"--ray-cpus must be a positive number of CPUs, got {options.cpus_per_actor:g}")
    gpus = int(cluster.get("GPU", 0))
    if gpus:
        resources: dict[str, float] = {"num_gpus": 1, "num_cpus": 1}
        fits = gpus
    else:
        resources = {"num_cpus": options.cpus_per_actor}
        fits = int(cluster.get("CPU", 0) // options.cpus_per_actor)
    count = options.actors if options.actors is not None else fits
    if count < 1:
        raise RunnerUnavailable(
            f"the Ray cluster has no room for an actor: it offers {cluster.get('CPU', 0):g} CPU(s) and no GPU, "
            f"an actor takes {options.cpus_per_actor:g} CPU(s); lower --ray-cpus or add nodes"
        )
    return ActorPlan(count, resources)


@dataclass(frozen=True)
class WorkerInfo:
    """Who an actor is; ``model_loads`` counts how often it loaded the models (once, when it started)."""

    pid: int
    node: str
    device: str
    model_loads: int
    jobs: int = 0  # jobs it rendered (done or failed)


@dataclass(frozen=True)
class RenderResult:
    status: str  # "done", "failed", or "unavailable" (the actor cannot render at all)
    reason: str = ""
    files: tuple[tuple[str, bytes], ...] = ()  # copy mode: (path relative to the output folder, bytes)
    paths: tuple[str, ...] = ()  # shared storage: the files written in place
    chunks: int = 0
    replayed_chunks: int = 0  # chunks taken from the job folder of an earlier attempt
    seconds: float = 0.0
    worker: WorkerInfo | None = None


def load_demo_models(device: str) -> Any:
    """The default :data:`ModelLoader`: the embedded demo model, as in-process jobs use (imported here, so
    the submitting machine never imports torch for a Ray run)."""
    from talkgen_core.pipeline import load_demo_models as load

    return load(device)


class JobRenderer:
    """The body of one Ray actor (made remote by :func:`ray_runners`): loads the models in ``__init__``, then
    renders jobs through :class:`InProcessRunner`. Runs with two threads so :meth:`cancel` reaches a render."""

    def __init__(self, loader: ModelLoader = load_demo_models) -> None:
        import ray

        self._device = "cuda" if ray.get_gpu_ids() else "cpu"
        self._node = ray.get_runtime_context().get_node_id()
        self._model_loads = 0
        self._jobs = 0
        self._models = loader(device=self._device)
        self._model_loads += 1
        self._last: Any = None  # the GenerateResult of the job rendering now
        self._cancel = threading.Event()
        self._runner = InProcessRunner(generate=self._generate)

    def info(self) -> WorkerInfo:
        return WorkerInfo(os.getpid(), self._node, self._device, self._model_loads, self._jobs)

    def cancel(self) -> None:
        self._cancel.set()

    def render(self, job: Job, inputs: list[bytes] | None, output_dir: str | None) -> RenderResult:
        """Render ``job``: from ``inputs`` (the source's then each audio's bytes) in a workspace when given,
        else from the job's own paths into ``output_dir`` (shared storage). Never raises for the job's failure."""
        self._cancel.clear()
        self._last = None
        started = time.monotonic()
        workspace = _workspace(job.key) if inputs is not None else None
        try:
            if workspace is not None:
                run_job, out_dir = _unpacked(job, inputs or [], workspace / "inputs"), workspace / "out"
            else:
                run_job, out_dir = job, Path(output_dir or ".")
                _check_shared_paths(job, out_dir, self._node)
            written = self._runner.run(run_job, out_dir, self._cancel)
            files = tuple((str(p.relative_to(out_dir)), p.read_bytes()) for p in written) if workspace else ()
            status, reason = "done", ""
        except RunnerUnavailable as exc:
            status, reason, written, files = "unavailable", str(exc), [], ()
        except JobFailed as exc:
            status, reason, written, files = "failed", exc.reason, [], ()
        except (Exception, SystemExit) as exc:  # worded as the scheduler words an in-process failure
            status, reason, written, files = "failed", f"{type(exc).__name__}: {exc}", [], ()
        finally:
            self._jobs += 1
        if workspace is not None and not self._cancel.is_set():
            shutil.rmtree(workspace, ignore_errors=True)  # kept after a cancel: a rerun resumes from it
        last = self._last
        return RenderResult(
            status, reason, files, () if workspace else tuple(str(p) for p in written),
            chunks=getattr(last, "chunks", 0), replayed_chunks=getattr(last, "replayed_chunks", 0),
            seconds=time.monotonic() - started, worker=self.info(),
        )

    def _generate(self, **arguments: Any) -> Any:
        """``pipeline.generate`` with this actor's models (a job's own ``device`` setting still wins)."""
        from talkgen_core.pipeline import generate

        self._last = generate(**{"models": self._models, "device": self._device, **arguments})
        return self._last


def _workspace(job_key: str) -> Path:
    """The job's folder on this node; named by the job key, so a replacement actor here finds its job folder."""
    return Path(tempfile.gettempdir()) / "talkgen-ray" / job_key


def _unpacked(job: Job, inputs: list[bytes], folder: Path) -> Job:
    """``job`` with its files written under ``folder`` (each keeps its name: ``folder/<n>/<name>``)."""
    assert job.source is not None, "only valid jobs reach a runner"
    originals = [job.source, *job.audio]
    if len(inputs) != len(originals):
        raise JobFailed(f"got {len(inputs)} input file(s) for a job that has {len(originals)}")
    copies = []
    for index, (original, data) in enumerate(zip(originals, inputs)):
        copy = folder / str(index) / original.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(copy, data)
        copies.append(copy)
    return replace(job, source=copies[0], audio=tuple(copies[1:]))


def _check_shared_paths(job: Job, output_dir: Path, node: str) -> None:
    missing = [p for p in (job.source, *job.audio) if p is not None and not p.is_file()]
    if missing or not output_dir.is_dir():
        what = ", ".join(str(p) for p in missing) if missing else f"the output folder {output_dir}"
        raise JobFailed(
            f"shared storage: the Ray worker on node {node[:12]} cannot see {what}; mount it at the same path "
            "on every node, or drop --ray-shared-storage to send the files with the jobs"
        )


class _WorkerLost(Exception):
    """The actor died while it held the job (its process was killed, or its node went away)."""


@dataclass
class _Attempt:
    pid: int
    node: str
    outcome: str  # "done", "failed", "worker lost: ..."


@dataclass
class RayActorRunner:
    """A scheduler runner for one Ray actor; replaces the actor when it is lost (see the module docstring)."""

    index: int
    spawn: Callable[[], Any]  # starts a new actor (an ActorHandle of JobRenderer)
    retries: int = 1
    shared_storage: bool = False
    ready_timeout: float = 600.0
    name: str = ""
    worker: WorkerInfo | None = None  # the current actor, once it answered
    actors_started: int = 0
    current_job: Job | None = None
    _actor: Any = field(default=None, repr=False)
    _lost: bool = field(default=False, repr=False)  # the actor died: start a new one before the next render

    def __post_init__(self) -> None:
        self.name = self.name or f"ray-actor-{self.index}"
        self._start_actor()

    def check(self) -> None:
        """Wait until the actor is placed and has loaded its models."""
        self._wait_ready()

    def stats(self) -> WorkerInfo:
        """The current actor's own count of model loads and jobs (asked from the actor)."""
        ray = import_ray()
        return ray.get(self._actor.info.remote(), timeout=self.ready_timeout)

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        attempts: list[_Attempt] = []
        self.current_job = job
        try:
            while True:
                if self._lost:
                    self._replace_actor()
                elif self.worker is None:
                    self._wait_ready()
                worker = self.worker
                assert worker is not None
                try:
                    result = self._render(job, output_dir, cancel)
                except _WorkerLost as exc:
                    self._lost = True  # replaced before this runner renders again, whatever happens to the job
                    attempts.append(_Attempt(worker.pid, worker.node, f"worker lost: {exc}"))
                    if len(attempts) > self.retries:
                        raise JobFailed(
                            f"its Ray worker was lost {len(attempts)} time(s) while running it (last: {exc}); does "
                            "the job crash it? (see the Ray logs; --retries N allows more tries)"
                        ) from None
                    continue
                attempts.append(_Attempt(worker.pid, worker.node, result.status))
                return self._finish(job, result, output_dir, attempts)
        finally:
            self.current_job = None

    def close(self) -> None:
        """Stop the actor (its resources go back to the cluster)."""
        if self._actor is not None:
            import_ray().kill(self._actor, no_restart=True)
            self._actor = None

    def _render(self, job: Job, output_dir: Path, cancel: threading.Event) -> RenderResult:
        ray = import_ray()
        assert job.source is not None, "only valid jobs reach a runner"
        if self.shared_storage:
            request = self._actor.render.remote(job, None, str(output_dir.absolute()))
        else:
            inputs = [path.read_bytes() for path in (job.source, *job.audio)]
            request = self._actor.render.remote(job, inputs, None)
        cancel_sent = False
        while not ray.wait([request], timeout=_WAIT_SECONDS)[0]:
            if cancel.is_set() and not cancel_sent:
                self._actor.cancel.remote()
                cancel_sent = True
        try:
            return ray.get(request)
        except ray.exceptions.RayTaskError as exc:  # raised outside the job's own error handling
            raise JobFailed(f"the Ray task failed: {exc}") from None
        except ray.exceptions.RayError as exc:  # actor died, node lost, object lost
            raise _WorkerLost(f"{type(exc).__name__}: {_first_line(exc)}") from None

    def _finish(self, job: Job, result: RenderResult, output_dir: Path, attempts: list[_Attempt]) -> list[Path]:
        if result.status == "unavailable":
            self.worker = None
            raise RunnerUnavailable(f"{self.name}: {result.reason}")
        if result.status != "done":
            raise JobFailed(result.reason)
        if result.worker is not None:
            self.worker = result.worker
        if self.shared_storage:
            written = [Path(path) for path in result.paths]
        else:
            written = []
            for relative, data in result.files:
                target = inside(output_dir, relative, "output")
                write_bytes_atomic(target, data)
                written.append(target)
        if not written:
            raise JobFailed("the Ray worker finished but sent back no output")
        report = {
            "job": job.number, "row": job.row, "output": job.output, "key": job.key, "runner": self.name,
            "outputs": [str(p) for p in written], "chunks": result.chunks, "replayed_chunks": result.replayed_chunks,
            "render_seconds": round(result.seconds, 3), "attempts": [asdict(a) for a in attempts],
            "worker": asdict(result.worker) if result.worker else None,
            "storage": "shared" if self.shared_storage else "copy",
        }  # fmt: skip
        write_bytes_atomic(written[0].with_suffix(REPORT_SUFFIX), (json.dumps(report, indent=1) + "\n").encode())
        return written

    def _start_actor(self) -> None:
        self._actor = self.spawn()
        self.actors_started += 1
        self.worker = None
        self._lost = False

    def _wait_ready(self) -> None:
        ray = import_ray()
        try:
            self.worker = ray.get(self._actor.info.remote(), timeout=self.ready_timeout)
        except ray.exceptions.GetTimeoutError:
            raise RunnerUnavailable(
                f"{self.name} was not ready within {self.ready_timeout:g} s: the cluster may lack the resources "
                "for it (see `ray status`), or loading the models takes longer"
            ) from None
        except ray.exceptions.RayError as exc:
            raise RunnerUnavailable(f"{self.name} could not start: {_first_line(exc)}") from None

    def _replace_actor(self) -> None:
        ray = import_ray()
        try:
            ray.kill(self._actor, no_restart=True)
        except Exception:  # already gone: nothing to stop
            pass
        self._start_actor()
        self._wait_ready()


def _first_line(exc: BaseException) -> str:
    """One line for a Ray error: the first line, plus the cause's last line when a traceback follows."""
    text = _ANSI_COLOUR.sub("", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    cause = next((line for line in reversed(lines[1:]) if "Error" in line.split(":")[0]), None)
    return f"{lines[0]} ({cause})" if cause else lines[0]


def connect(options: RayOptions) -> Any:
    """Ray, connected: a session already open in this process is used as it is; ``auto`` joins the cluster
    ``RAY_ADDRESS`` names or one ``ray start`` runs on this machine, else starts a local one for the run (it
    ends with the process); any other address is a running head's."""
    ray = import_ray()
    if not ray.is_initialized():
        address = None if options.address in ("", "auto") else options.address
        try:
            ray.init(address=address, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RunnerUnavailable(f"cannot reach the Ray cluster at {options.address}: {_first_line(exc)}") from None
    return ray


def ray_runners(options: RayOptions, retries: int, loader: ModelLoader = load_demo_models) -> list[RayActorRunner]:
    """One runner per actor, the actors started (they load their models in parallel; ``check`` waits)."""
    ray = connect(options)
    plan = plan_actors(ray.cluster_resources(), options)
    actor_class = ray.remote(JobRenderer).options(max_concurrency=2, max_restarts=0, **plan.resources)
    return [
        RayActorRunner(index, lambda: actor_class.remote(loader), retries, options.shared_storage,
                       options.ready_timeout)
        for index in range(plan.count)
    ]
