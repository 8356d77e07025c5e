"""``python -m talkgen_core queue``: help, exit statuses, in-process runs and Ctrl-C."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

import talkgen_core
from talkgen_core.cli import main
from talkgen_core.queue.batch import BatchOptions, run_batch
from talkgen_core.queue.journal import read_journal
from talkgen_core.queue.manifest import Job
from talkgen_core.queue.runner import JobFailed

REPO_ROOT = Path(talkgen_core.__file__).resolve().parent.parent


def test_help_documents_manifest_and_slot_rules(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["queue", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("audio2", "LoadAudio.audio", "LoadVideo.file", "filename_prefix", "--server", "journal"):
        assert phrase in text


def test_missing_files_fail_the_job_and_say_so_last(tmp_path: Path) -> None:
    """The acceptance check's scenario, through a real subprocess."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,audio,output\nmissing.mp4,missing.wav,x\n")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-m", "talkgen_core", "queue", str(manifest)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    last = (done.stdout + done.stderr).strip().splitlines()[-1]
    assert "not found" in last and "job 1 (row 2)" in last


def test_bad_manifest_or_options_exit_2(tmp_path: Path, media: Path, workflow_file: Path, capsys) -> None:
    assert main(["queue", str(tmp_path / "absent.csv")]) == 2
    assert "manifest not found" in capsys.readouterr().err
    (tmp_path / "noaudio.csv").write_text("video,output\na.mp4,x\n")
    assert main(["queue", str(tmp_path / "noaudio.csv")]) == 2
    assert "no audio column" in capsys.readouterr().err
    manifest = media / "jobs.csv"
    manifest.write_text("video,audio\na.mp4,a.wav\n")
    assert main(["queue", str(manifest), "--server", "http://127.0.0.1:9"]) == 2
    assert "--server needs --workflow" in capsys.readouterr().err
    assert main(["queue", str(manifest), "--workflow", str(workflow_file)]) == 2
    assert "--workflow is used only with --server" in capsys.readouterr().err
    assert main(["queue", str(manifest), "--server", "localhost:8188", "--workflow", str(workflow_file)]) == 2
    assert "not an http URL" in capsys.readouterr().err


def fake_pipeline(calls: list[dict]) -> types.ModuleType:
    """A stand-in for talkgen_core.pipeline: generate() writes the file, fails for seed 13."""
    module = types.ModuleType("talkgen_core.pipeline")

    def generate(*, audio: list[str], out: str, cancel, image: str | None = None, video: str | None = None, **settings):
        assert cancel() is False  # the queue's Ctrl-C hook, not yet triggered
        calls.append(dict(audio=audio, out=out, image=image, video=video, **settings))
        if settings.get("seed") == 13:
            raise RuntimeError("out of memory on purpose")
        Path(out).write_bytes(b"mp4")
        return types.SimpleNamespace(path=Path(out))

    module.generate = generate
    return module


def test_in_process_runs_call_generate_and_exit_1_on_any_failure(media: Path, monkeypatch, capsys) -> None:
    calls: list[dict] = []
    monkeypatch.setitem(sys.modules, "talkgen_core.pipeline", fake_pipeline(calls))
    manifest = media / "jobs.csv"
    manifest.write_text("video,image,audio,audio2,output,seed,steps\n"
                        "a.mp4,,a.wav,b.wav,duo,1,8\n,face.png,c.wav,,face,13,\nb.mp4,,d.wav,,solo,2,\n")
    assert main(["queue", str(manifest), "--output-dir", str(media / "out")]) == 1
    assert calls[0] == dict(audio=[str(media / "a.wav"), str(media / "b.wav")], out=str(media / "out" / "duo.mp4"),
                            image=None, video=str(media / "a.mp4"), seed=1, steps=8)
    assert calls[1]["image"] == str(media / "face.png")
    assert (media / "out" / "solo.mp4").is_file()
    output = capsys.readouterr().out
    assert "RuntimeError: out of memory on purpose" in output.splitlines()[-1]
    assert "ETA" in output

    calls.clear()  # rerun: only the failed job runs again; make it succeed
    manifest.write_text(manifest.read_text().replace("face,13", "face,14"))
    assert main(["queue", str(manifest), "--output-dir", str(media / "out")]) == 0
    assert [c["image"] for c in calls] == [str(media / "face.png")]


class InterruptDuringSecondJob:
    """Job 1 finishes; during job 2 the process gets SIGINT, and the runner stops when cancelled."""

    name = "interruptible"

    def check(self) -> None:
        pass

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        if job.number == 2:
            os.kill(os.getpid(), signal.SIGINT)
            if cancel.wait(10):
                raise JobFailed("interrupted (Ctrl-C)")
        out = output_dir / f"{job.output}.mp4"
        out.write_bytes(b"video")
        return [out]


def test_ctrl_c_stops_after_writing_the_journal(media: Path) -> None:
    manifest = media / "jobs.csv"
    manifest.write_text("video,audio,output\na.mp4,a.wav,one\nb.mp4,b.wav,two\nc.mp4,c.wav,three\n")
    report = io.StringIO()
    assert run_batch(BatchOptions(manifest), runners=[InterruptDuringSecondJob()], stream=report) == 130
    statuses = {r.output: (r.status, r.reason) for r in read_journal(media / "jobs.journal.jsonl").records}
    assert statuses == {"one": ("done", ""), "two": ("failed", "interrupted (Ctrl-C)")}
    text = report.getvalue()
    assert "stopped by Ctrl-C before it started" in text and "rerun to continue" in text
