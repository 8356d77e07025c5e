from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import textwrap
from pathlib import Path

import talkgen_core
from talkgen_core.queue.batch import BatchOptions, run_batch
from talkgen_core.queue.journal import JournalRecord, JournalWriter, read_journal
from talkgen_core.queue.manifest import Job
from talkgen_core.queue.runner import JobFailed

REPO_ROOT = Path(talkgen_core.__file__).resolve().parent.parent


class RecordingRunner:
    """Writes a small output per job and remembers which jobs it ran; fails the outputs listed in ``fail``."""

    name = "recording"

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.ran: list[str] = []
        self.fail = fail

    def check(self) -> None:
        pass

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        self.ran.append(job.output)
        if job.output in self.fail:
            raise JobFailed(f"{job.output} failed on purpose")
        out = output_dir / f"{job.output}.mp4"
        out.write_bytes(b"video")
        return [out]


def four_job_manifest(media: Path) -> Path:
    manifest = media / "jobs.csv"
    rows = [f"{c}.mp4,{c}.wav,out_{c}" for c in "abcd"]
    manifest.write_text("video,audio,output\n" + "\n".join(rows) + "\n")
    return manifest


def test_records_round_trip_and_torn_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with JournalWriter(path) as journal:
        journal.append(JournalRecord("k1", 1, 2, "one", "failed", reason="boom", seconds=1.5))
    with open(path, "ab") as handle:
        handle.write(b'{"key": "k2", "job": 2, "sta')  # a crash in the middle of a write
    with JournalWriter(path) as journal:  # reopening closes the torn line first
        journal.append(JournalRecord("k1", 1, 2, "one", "done", outputs=(str(path),)))
    contents = read_journal(path)
    assert contents.unreadable_lines == 1
    assert [r.status for r in contents.records] == ["failed", "done"]
    latest = contents.latest_by_key()["k1"]
    assert latest.is_complete and latest.outputs == (str(path),)
    assert not JournalRecord("k3", 1, 2, "x", "done", outputs=(str(tmp_path / "gone.mp4"),)).is_complete
    assert not JournalRecord("k4", 1, 2, "x", "done").is_complete  # done without files is not trusted


def test_rerun_skips_done_jobs_and_retries_failed_ones(media: Path) -> None:
    manifest = four_job_manifest(media)
    first = RecordingRunner(fail=("out_b",))
    assert run_batch(BatchOptions(manifest), runners=[first], stream=io.StringIO()) == 1
    assert sorted(first.ran) == ["out_a", "out_b", "out_c", "out_d"]

    second = RecordingRunner()
    report = io.StringIO()
    assert run_batch(BatchOptions(manifest), runners=[second], stream=report) == 0
    assert second.ran == ["out_b"]
    assert "queue: all 4 jobs done (3 done by an earlier run)" in report.getvalue().splitlines()[-1]

    (media / "out_c.mp4").unlink()  # a done job whose output vanished runs again
    third = RecordingRunner()
    assert run_batch(BatchOptions(manifest), runners=[third], stream=io.StringIO()) == 0
    assert third.ran == ["out_c"]


CRASHING_RUN = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from talkgen_core.queue.batch import BatchOptions, run_batch
    from talkgen_core.queue.runner import JobFailed

    class CrashOnThirdJob:
        name = "crashing"
        def check(self):
            pass
        def run(self, job, output_dir, cancel):
            if job.number == 3:
                os._exit(9)  # the whole process dies with job 3 in flight
            if job.number == 2:
                raise JobFailed("flaky")
            out = output_dir / (job.output + ".mp4")
            out.write_bytes(b"video")
            return [out]

    sys.exit(run_batch(BatchOptions(Path(sys.argv[1])), runners=[CrashOnThirdJob()]))
    """
)


def test_journal_survives_a_crash_in_the_middle(media: Path) -> None:
    manifest = four_job_manifest(media)
    script = media.parent / "crash.py"
    script.write_text(CRASHING_RUN)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    crashed = subprocess.run([sys.executable, str(script), str(manifest)], env=env, capture_output=True, timeout=60)
    assert crashed.returncode == 9, crashed.stderr.decode()

    journal_path = media / "jobs.journal.jsonl"
    after_crash = read_journal(journal_path)
    assert {(r.output, r.status) for r in after_crash.records} == {("out_a", "done"), ("out_b", "failed")}
    with open(journal_path, "ab") as handle:
        handle.write(b'{"key": "0123", "status": "do')  # and the crash tore a write

    rerun = RecordingRunner()
    report = io.StringIO()
    assert run_batch(BatchOptions(manifest), runners=[rerun], stream=report) == 0
    assert sorted(rerun.ran) == ["out_b", "out_c", "out_d"]
    assert "ignored 1 unreadable line" in report.getvalue()
    final = read_journal(journal_path)
    assert final.unreadable_lines == 1
    assert all(r.is_complete for r in final.latest_by_key().values())
    assert len(final.latest_by_key()) == 4
