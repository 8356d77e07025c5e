"""``queue --ray``: jobs on a local Ray cluster (2 CPU actors, the embedded demo model).

The cluster tests need Ray (``pip install "talkgen[ray]"``, installed by ``make test``) and skip with that
reason without it; the tests of the command without Ray hide it and always run.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from talkgen_core.cli import main
from talkgen_core.queue.batch import BatchOptions, run_batch
from talkgen_core.queue.inprocess_runner import InProcessRunner
from talkgen_core.queue.journal import read_journal
from talkgen_core.queue.ray_runner import RayOptions, RayActorRunner, plan_actors, ray_runners
from talkgen_core.queue.runner import RunnerUnavailable
from helpers.tiny_inputs import write_block_face, write_gated_tone

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason='needs Ray: pip install "talkgen[ray]" (make test installs it)')

FAST = "17,5,16x16"  # chunk_frames, context_frames, size: 2 chunks per second of audio
HEADER = "image,audio,output,seed,steps,chunk_frames,context_frames,size,job_dir\n"
GOOD = ("one", "two", "victim", "four")
BAD = ("bad_audio", "bad_steps")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    write_gated_tone(folder / "a.wav", 1.0, 180.0)
    write_gated_tone(folder / "b.wav", 1.0, 260.0)
    write_gated_tone(folder / "long.wav", 3.0, 220.0)  # 6 chunks: the job an actor is killed in
    (folder / "broken.wav").write_bytes(b"RIFF but not really a wave file")
    write_block_face(folder / "face.png")
    return folder


def _manifest(folder: Path, inputs: Path, names: tuple[str, ...] = GOOD + BAD) -> Path:
    """6 jobs: four good (``victim`` is long and resumable), a broken audio file and a refused setting."""
    rows = {
        "one": f"a.wav,one,1,1,{FAST},",
        "two": f"b.wav,two,2,1,{FAST},",
        "victim": f"long.wav,victim,3,3,{FAST},victim_jobs",
        "four": f"b.wav,four,4,1,{FAST},",
        "bad_audio": f"broken.wav,bad_audio,5,1,{FAST},",
        "bad_steps": f"a.wav,bad_steps,6,0,{FAST},",
    }
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{inputs / 'face.png'},{inputs}/{rows[name]}\n" for name in names]
    path = folder / "jobs.csv"
    path.write_text(HEADER + "".join(lines))
    return path


def _latest(journal: Path) -> dict[str, object]:
    """Output name -> latest journal record."""
    return {record.output: record for record in read_journal(journal).latest_by_key().values()}


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, inputs: Path) -> Path:
    """The 6 jobs through the in-process runner: the outputs every Ray run must reproduce."""
    folder = tmp_path_factory.mktemp("in_process")
    manifest = _manifest(folder, inputs)
    assert run_batch(BatchOptions(manifest), runners=[InProcessRunner()], stream=io.StringIO()) == 1
    return folder


def _kill_when_chunk_saved(runners: list[RayActorRunner], job_folder: Path, killed: list[int]) -> threading.Thread:
    """Kill -9 the actor running ``victim`` mid-job, once its second chunk is saved (the manifest of its job
    folder records a chunk after the chunk's file is written, so the first one is recorded by then)."""

    def watch() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            for runner in runners:
                job, worker = runner.current_job, runner.worker
                if job is not None and job.output == "victim" and worker is not None \
                        and any(job_folder.glob("*/chunk_00001.safetensors")):
                    os.kill(worker.pid, signal.SIGKILL)
                    killed.append(worker.pid)
                    return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@needs_ray
def test_killed_worker_and_bad_jobs_lose_nothing_and_match_in_process(cluster, inputs: Path, reference: Path,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "ray"
    manifest = _manifest(out, inputs)
    runners = ray_runners(RayOptions(actors=2, shared_storage=True), retries=1)
    try:
        killed: list[int] = []
        watcher = _kill_when_chunk_saved(runners, out / "victim_jobs", killed)
        log = io.StringIO()
        assert run_batch(BatchOptions(manifest), runners=runners, stream=log) == 1, log.getvalue()
        watcher.join(timeout=1)
        assert len(killed) == 1, "the victim job was never seen mid-job"

        journal = out / "jobs.journal.jsonl"
        latest = _latest(journal)
        expected = _latest(reference / "jobs.journal.jsonl")
        assert {name: latest[name].status for name in GOOD + BAD} == {**dict.fromkeys(GOOD, "done"),
                                                                     **dict.fromkeys(BAD, "failed")}
        for name in BAD:  # the same error as in-process, and nothing written
            assert latest[name].reason == expected[name].reason and latest[name].reason
            assert not (out / f"{name}.mp4").exists()
        assert "broken.wav" in latest["bad_audio"].reason or "decode" in latest["bad_audio"].reason.lower()
        for name in GOOD:  # byte for byte the in-process runner's video
            assert (out / f"{name}.mp4").read_bytes() == (reference / f"{name}.mp4").read_bytes(), name

        report = json.loads((out / "victim.ray.json").read_text())
        assert [a["outcome"].split(":")[0] for a in report["attempts"]] == ["worker lost", "done"]
        assert report["attempts"][0]["pid"] == killed[0]
        assert report["chunks"] == 6 and 1 <= report["replayed_chunks"] < 6  # resumed from its job folder

        stats = [runner.stats() for runner in runners]
        assert [s.model_loads for s in stats] == [1, 1]  # once per actor, however many jobs it ran
        assert sum(runner.actors_started for runner in runners) == 3  # 2 + the one replacing the killed actor
        rendered = sum(s.jobs for s in stats)

        log = io.StringIO()  # the rerun: finished jobs are skipped, only the two bad ones run again
        assert run_batch(BatchOptions(manifest), runners=runners, stream=log) == 1
        assert "2 to run, 4 done by an earlier run" in log.getvalue()
        stats = [runner.stats() for runner in runners]
        assert sum(s.jobs for s in stats) == rendered + 2 and [s.model_loads for s in stats] == [1, 1]
        assert len(read_journal(journal).records) == 6 + 2
    finally:
        for runner in runners:
            runner.close()


@needs_ray
def test_with_no_retries_a_lost_worker_fails_its_job_only(cluster, inputs: Path, reference: Path,
                                                           tmp_path: Path) -> None:
    """--retries 0: the job whose worker was killed fails with that reason; a fresh actor takes the next job."""
    manifest = _manifest(tmp_path, inputs, ("victim", "one"))
    runners = ray_runners(RayOptions(actors=1, shared_storage=True), retries=0)
    try:
        killed: list[int] = []
        watcher = _kill_when_chunk_saved(runners, tmp_path / "victim_jobs", killed)
        assert run_batch(BatchOptions(manifest), runners=runners, stream=io.StringIO()) == 1
        watcher.join(timeout=1)
        latest = _latest(tmp_path / "jobs.journal.jsonl")
        assert latest["victim"].status == "failed" and "Ray worker was lost 1 time(s)" in latest["victim"].reason
        assert latest["one"].status == "done"
        assert (tmp_path / "one.mp4").read_bytes() == (reference / "one.mp4").read_bytes()
        assert len(killed) == 1 and runners[0].actors_started == 2 and runners[0].stats().model_loads == 1
    finally:
        runners[0].close()


@needs_ray
def test_copy_mode_sends_inputs_and_brings_outputs_back(cluster, inputs: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    manifest = _manifest(out, inputs, ("one", "two", "bad_audio"))
    runners = ray_runners(RayOptions(actors=2), retries=1)
    try:
        assert run_batch(BatchOptions(manifest), runners=runners, stream=io.StringIO()) == 1
        latest = _latest(out / "jobs.journal.jsonl")
    finally:
        for runner in runners:
            runner.close()
    for name in ("one", "two"):
        assert (out / f"{name}.mp4").read_bytes() == (reference / f"{name}.mp4").read_bytes()
        report = json.loads((out / f"{name}.ray.json").read_text())
        assert report["storage"] == "copy" and report["worker"]["model_loads"] == 1
        workspace = Path(tempfile.gettempdir()) / "talkgen-ray" / latest[name].key
        assert not workspace.exists()  # the worker's copy is cleaned up once the output is back
    assert latest["bad_audio"].status == "failed" and latest["bad_audio"].outputs == ()


@needs_ray
def test_queue_command_runs_on_ray(cluster, inputs: Path, reference: Path, tmp_path: Path, capsys) -> None:
    manifest = _manifest(tmp_path, inputs, ("one",))
    assert main(["queue", str(manifest), "--ray", "--ray-actors", "1"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "queue: all 1 jobs done"
    assert (tmp_path / "one.mp4").read_bytes() == (reference / "one.mp4").read_bytes()
    deadline = time.monotonic() + 20
    while cluster.available_resources().get("CPU") != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.available_resources().get("CPU") == 2  # the command stopped its actor


def test_without_ray_the_option_names_the_extra(tmp_path: Path, inputs: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    manifest = _manifest(tmp_path, inputs, ("one",))
    assert main(["queue", str(manifest), "--ray"]) == 2
    assert 'pip install "talkgen[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "one.mp4").exists() and not (tmp_path / "jobs.journal.jsonl").exists()


@pytest.mark.parametrize("argv, message", [
    (["--ray-actors", "2"], "--ray-actors need(s) --ray"),
    (["--ray", "--server", "http://127.0.0.1:8188"], "not both"),
    (["--ray", "--ray-actors", "0"], "--ray-actors must be 1 or more"),
    (["--ray", "--ray-cpus", "-1"], "--ray-cpus must be a positive number"),
])
def test_ray_options_that_do_not_fit_exit_2(tmp_path: Path, inputs: Path, argv: list[str], message: str,
                                            capsys) -> None:
    manifest = _manifest(tmp_path, inputs, ("one",))
    assert main(["queue", str(manifest), *argv]) == 2
    assert message in capsys.readouterr().err


def test_actors_one_per_gpu_else_per_cpus() -> None:
    assert plan_actors({"CPU": 32.0, "GPU": 4.0}, RayOptions()).count == 4
    assert plan_actors({"CPU": 32.0, "GPU": 4.0}, RayOptions()).resources["num_gpus"] == 1
    cpu = plan_actors({"CPU": 16.0}, RayOptions(cpus_per_actor=6))
    assert (cpu.count, cpu.resources) == (2, {"num_cpus": 6})
    assert plan_actors({"CPU": 16.0}, RayOptions(actors=3)).count == 3
    with pytest.raises(RunnerUnavailable, match="no room for an actor"):
        plan_actors({"CPU": 2.0}, RayOptions(cpus_per_actor=4))
