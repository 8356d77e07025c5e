"""Attacks on what talkgen writes: outputs that are inputs, kills and Ctrl-C mid-write, planted symlinks,
two runs on one job folder, job folders that escape their root, damaged or foreign chunk files, and what a
cancel says. In every case no input and no finished work may be lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from helpers.pack_import import import_pack_like_comfyui
from sampling.test_streaming import make_sampler
from talkgen_core.cli import main
from talkgen_core.commands.generate import _job_folder
from talkgen_core.files.atomic import TempFile, atomic_path, write_bytes_atomic
from talkgen_core.files.guard import inside
from talkgen_core.files.lock import FolderInUse, FolderLock
from talkgen_core.pipeline import generate
from talkgen_core.queue.inprocess_runner import call_pipeline_generate
from talkgen_core.queue.manifest import read_manifest
from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.sampling import jobdir as jobdir_module
from talkgen_core.sampling.jobdir import ChunkFileWarning, JobDir, job_key, remove_job
from talkgen_core.sampling.streaming import Cancelled
from talkgen_core.video import writer as writer_module
from talkgen_core.video.save import save_video
from talkgen_core.video.writer import FrameCollector, Mp4Writer
from helpers.demo_fixtures import models, inputs  # noqa: F401 (pytest fixtures)
from helpers.tiny_inputs import write_gated_tone

REPO = Path(__file__).resolve().parents[2]
FAST = {"chunk_frames": 17, "context_frames": 5, "steps": 1, "size": "16x16"}  # 2 chunks per second of video
PLAN = ChunkPlan(52, chunk_frames=17, context_frames=5)  # 4 chunks, for the fake sampler




def frames(n: int = 9, value: float = 0.2) -> torch.Tensor:
    return torch.full((n, 3, 16, 16), value)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- 1. an output that is an input


def test_out_equal_to_an_input_is_refused_before_any_work_and_the_input_is_kept(inputs, tmp_path):
    audio = tmp_path / "keep.wav"
    audio.write_bytes((inputs / "a.wav").read_bytes())
    before = audio.read_bytes()
    twin = tmp_path / "twin.wav"
    os.link(audio, twin)  # the same file under another name
    for out in (audio, tmp_path / "sub" / ".." / "keep.wav", twin):
        with pytest.raises(ValueError, match=r"same file as the audio input.*another name"):
            generate(image=inputs / "face.png", audio=audio, out=out, models=None)  # no model is even loaded
    with pytest.raises(ValueError, match="same file as the image input"):
        generate(image=inputs / "face.png", audio=audio, out=inputs / "face.png", models=None)
    assert audio.read_bytes() == before


def test_cli_refuses_out_equal_to_audio_with_rc_2_and_keeps_it(inputs, tmp_path, capsys):
    audio = tmp_path / "keep.wav"
    audio.write_bytes((inputs / "a.wav").read_bytes())
    before = audio.read_bytes()
    rc = main(["generate", "--image", str(inputs / "face.png"), "--audio", str(audio), "--out", str(audio)])
    assert rc == 2 and audio.read_bytes() == before
    assert "--out" in capsys.readouterr().err


def test_saving_a_video_over_its_own_source_is_refused(tmp_path):
    source = tmp_path / "src.mp4"
    writer = Mp4Writer(source, fps=25)
    writer.write(frames())
    writer.close()
    before = source.read_bytes()
    with pytest.raises(ValueError, match="same file as the source video"):
        save_video(source, source=source)
    assert source.read_bytes() == before


# ---------------------------------------------------------------- 2. atomic outputs


def test_an_older_output_stays_until_the_new_one_is_complete(tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"an older good video")
    writer = Mp4Writer(out, fps=25, audio=torch.zeros(16000), sample_rate=16000)
    writer.write(frames())
    assert out.read_bytes() == b"an older good video"  # still the old one while rendering
    writer.close()
    assert out.read_bytes()[4:8] == b"ftyp" and hidden(tmp_path) == []
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()  # an ordinary file, not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_mux_leaves_the_older_output_and_no_temps(tmp_path, monkeypatch):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"an older good video")

    def full_disk(video, raw, channels, rate, samples, target):
        Path(target).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_module, "mux_raw_audio", full_disk)
    writer = Mp4Writer(out, fps=25, audio=torch.zeros(16000), sample_rate=16000)
    writer.write(frames())
    with pytest.raises(OSError, match="No space"):
        writer.close()
    assert out.read_bytes() == b"an older good video" and hidden(tmp_path) == []


def test_an_error_after_the_first_chunk_leaves_nothing_at_the_output_name(models, inputs, tmp_path):
    out = tmp_path / "o.mp4"

    def crash_after_first_chunk(event):
        if event.kind == "chunk" and event.chunk == 0:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        generate(image=inputs / "face.png", audio=inputs / "a.wav", out=out, models=models,
                 progress=crash_after_first_chunk, job_dir=tmp_path / "job", **FAST)
    assert not out.exists() and hidden(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "job").glob("chunk_*")) == ["chunk_00000.safetensors"]


def test_ctrl_c_after_chunk_2_leaves_nothing_and_says_what_was_kept(inputs, tmp_path):
    """What the acceptance check does: SIGINT once the log shows chunk 2; the CLI stops at the next step."""
    out, job = tmp_path / "int.mp4", tmp_path / "job"
    audio = write_gated_tone(tmp_path / "long.wav", seconds=6.0)
    process = subprocess.Popen(
        [sys.executable, "-m", "talkgen_core", "generate", "--image", str(inputs / "face.png"), "--audio", str(audio),
         "--out", str(out), "--job-dir", "job", "--size", "16x16", "--chunk-frames", "17", "--context-frames", "5",
         "--steps", "40"],
        cwd=REPO, stderr=subprocess.PIPE, text=True)
    log = []
    for line in process.stderr:
        log.append(line)
        if line.startswith("chunk 2/"):
            process.send_signal(signal.SIGINT)
            break
    log += process.stderr.readlines()
    assert process.wait(timeout=120) == 130, "".join(log)
    assert not out.exists() and hidden(tmp_path) == []
    kept = len(list(job.glob("chunk_*")))
    assert kept >= 2 and f"kept in {job.resolve()}" in log[-1] and "--resume" in log[-1], "".join(log)


# ---------------------------------------------------------------- 3. planted symlinks


def test_planted_symlinks_at_old_temp_names_are_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.mp4"
    for name in (".out.audio.f32", ".out.video-only.mp4", ".manifest.json.tmp", ".chunk_00000.safetensors.tmp"):
        (tmp_path / name).symlink_to(victim)
    writer = Mp4Writer(out, fps=25, audio=torch.zeros(8000), sample_rate=16000)
    writer.write(frames())
    writer.close()
    job = JobDir(tmp_path, {}, "h", 1)
    job.save_chunk(0, torch.zeros(1, 2, 1, 1, 1))
    assert victim.read_text() == "precious"
    assert all((tmp_path / n).is_symlink() for n in (".out.audio.f32", ".manifest.json.tmp"))


def test_temps_are_unpredictable_exclusive_and_gone_after_use(tmp_path):
    target = tmp_path / "x.bin"
    first, second = TempFile(target), TempFile(target)
    assert first.path != second.path and first.path.parent == tmp_path
    assert first.path.stat().st_mode & 0o777 == 0o600
    first.discard(), second.discard()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            temp.write_bytes(b"partial")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    write_bytes_atomic(target, b"whole")
    assert target.read_bytes() == b"whole" and hidden(tmp_path) == []


# ---------------------------------------------------------------- 4. job folders: locks and places


def test_a_second_run_on_a_locked_job_folder_is_refused_naming_the_holder(tmp_path):
    with FolderLock(tmp_path / "job", "job folder"):
        with pytest.raises(FolderInUse, match=rf"job folder {tmp_path / 'job'} is in use by pid {os.getpid()}"):
            with FolderLock(tmp_path / "job", "job folder"):
                pass
    with FolderLock(tmp_path / "job"):  # released: free again
        pass


def test_generate_on_a_job_folder_in_use_fails_without_touching_it(models, inputs, tmp_path):
    with FolderLock(tmp_path / "job", "job folder"):
        with pytest.raises(FolderInUse, match="in use"):
            generate(image=inputs / "face.png", audio=inputs / "a.wav", out=tmp_path / "o.mp4", models=models,
                     job_dir=tmp_path / "job", **FAST)
    assert not (tmp_path / "job" / "manifest.json").exists() and not (tmp_path / "o.mp4").exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from talkgen_core.files.lock import FolderLock\n"
         f"with FolderLock({str(tmp_path / 'job')!r}):\n    print('held', flush=True); time.sleep(60)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderInUse, match=f"pid {holder.pid}"):
        with FolderLock(tmp_path / "job"):
            pass
    holder.kill()  # kill -9: no cleanup runs
    holder.wait()
    with FolderLock(tmp_path / "job"):
        assert str(os.getpid()) in (tmp_path / "job" / ".lock").read_text()


def test_job_folders_under_a_root_are_named_by_inputs_and_resume_with_no_editing(models, inputs, tmp_path):
    root = tmp_path / "jobs"

    def cancel_in_second_chunk() -> bool:
        return any(root.rglob("chunk_00000.safetensors"))  # once chunk 0 is saved

    with pytest.raises(Cancelled, match="after 1 of 2 chunks"):
        generate(image=inputs / "face.png", audio=inputs / "a.wav", out=tmp_path / "a.mp4", models=models,
                 job_root=root, cancel=cancel_in_second_chunk, **FAST)
    again = generate(image=inputs / "face.png", audio=inputs / "a.wav", out=tmp_path / "a.mp4", models=models,
                     job_root=root, **FAST)
    straight = generate(image=inputs / "face.png", audio=inputs / "a.wav", out=tmp_path / "s.mp4", models=models,
                        **FAST)
    assert again.replayed_chunks == 1 and again.job_path.parent == root
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "s.mp4").read_bytes() and straight.job_path is None
    other = generate(image=inputs / "face.png", audio=inputs / "b.wav", out=tmp_path / "b.mp4", models=models,
                     job_root=root, **FAST)  # other inputs, same root: its own folder, no failure
    assert other.job_path != again.job_path and other.replayed_chunks == 0
    assert len(list(root.iterdir())) == 2


def test_relative_folders_stay_inside_their_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "escape").symlink_to(tmp_path)
    assert inside(tmp_path / "root", "jobs/a", "job_dir") == (tmp_path / "root" / "jobs" / "a").resolve()
    for bad in ("/etc", "../x", "a/../../x", "escape", "~/x", "C:/x", ""):
        with pytest.raises(ValueError, match="job_dir"):
            inside(tmp_path / "root", bad, "job_dir")


def test_cli_relative_job_dir_is_inside_the_output_folder(tmp_path):
    args = Namespace(out=tmp_path / "renders" / "o.mp4", job_dir=Path("jobs/o"))
    assert _job_folder(args) == (tmp_path / "renders" / "jobs" / "o").resolve()
    assert _job_folder(Namespace(out=args.out, job_dir=tmp_path / "abs")) == tmp_path / "abs"
    with pytest.raises(ValueError, match="--job-dir"):
        _job_folder(Namespace(out=args.out, job_dir=Path("../elsewhere")))


def test_sampler_node_job_dir_lives_in_comfyui_output_or_temp(tmp_path, tmp_path_factory, monkeypatch):
    pack = import_pack_like_comfyui(tmp_path_factory.mktemp("custom_nodes"))
    sampler = pack.nodes.sampler
    monkeypatch.setattr(sampler.host, "output_directory", lambda: tmp_path / "output")
    monkeypatch.setattr(sampler.host, "temp_directory", lambda: tmp_path / "temp")
    assert sampler.job_root("") == (tmp_path / "temp" / "talkgen" / "jobs", True)
    assert sampler.job_root(" auto ") == (tmp_path / "temp" / "talkgen" / "jobs", True)
    assert sampler.job_root("my_jobs") == ((tmp_path / "output" / "my_jobs").resolve(), False)
    for bad in (str(tmp_path / "elsewhere"), "/tmp", "../x"):
        with pytest.raises(ValueError, match="job_dir"):
            sampler.job_root(bad)


def test_a_manifest_job_dir_must_stay_inside_the_output_folder(tmp_path):
    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "a.wav").write_bytes(b"x")
    manifest = tmp_path / "jobs.jsonl"
    rows = [{"video": "v.mp4", "audio": "a.wav", "output": f"o{i}", "job_dir": d}
            for i, d in enumerate(["/etc", "../up", "jobs"])]
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    jobs = read_manifest(manifest)
    assert [bool(j.problems) for j in jobs] == [True, True, False]
    assert all("job_dir" in j.problem_text() for j in jobs[:2])
    seen = {}

    def fake_generate(**kwargs):
        seen.update(kwargs)
        return Namespace(path=kwargs["out"])

    out = tmp_path / "out" / "o2.mp4"
    call_pipeline_generate(fake_generate, jobs[2], out, cancel=threading.Event())
    assert seen["job_root"] == str((tmp_path / "out" / "jobs").resolve()) and "job_dir" not in seen


# ---------------------------------------------------------------- 5. damaged and foreign chunk files


def _run(path, sampler, resume=False, inputs_hash="same-inputs"):
    job = JobDir(path, sampler.settings.to_dict(), inputs_hash, PLAN.num_chunks, resume=resume)
    sink = FrameCollector()
    result = sampler.run(sink, job=job)
    return sink.frames(), result


def test_a_truncated_chunk_is_recomputed_with_a_warning_and_the_result_is_exact(tmp_path):
    straight, _ = _run(tmp_path / "a", make_sampler(PLAN))
    chunk = tmp_path / "a" / "chunk_00002.safetensors"
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.warns(ChunkFileWarning, match=r"chunk_00002\.safetensors cannot be read"):
        again, result = _run(tmp_path / "a", make_sampler(PLAN), resume=True)
    assert result.replayed_chunks == 2 and torch.equal(again, straight)


def test_a_chunk_from_another_run_is_not_used(tmp_path):
    straight, _ = _run(tmp_path / "a", make_sampler(PLAN))
    _run(tmp_path / "b", make_sampler(PLAN), inputs_hash="other-inputs")
    foreign = (tmp_path / "b" / "chunk_00001.safetensors").read_bytes()
    (tmp_path / "a" / "chunk_00001.safetensors").write_bytes(foreign)
    with pytest.warns(ChunkFileWarning, match=r"chunk_00001\.safetensors belongs to another job"):
        again, result = _run(tmp_path / "a", make_sampler(PLAN), resume=True)
    assert result.replayed_chunks == 1 and torch.equal(again, straight)


def test_a_chunk_with_the_wrong_shape_or_damaged_values_is_recomputed(tmp_path):
    sampler = make_sampler(PLAN)
    straight, _ = _run(tmp_path, sampler)
    job = JobDir(tmp_path, sampler.settings.to_dict(), "same-inputs", PLAN.num_chunks, resume=True)
    save_file({"latents": torch.zeros(1, 4, 2, 2, 3)}, str(job.chunk_path(0)),
              metadata={"job": job.key, "chunk": "0", "shape": "[1, 4, 5, 2, 3]", "sha256": "0"})
    with pytest.warns(ChunkFileWarning, match="wrong shape"):
        again, result = _run(tmp_path, make_sampler(PLAN), resume=True)
    assert result.replayed_chunks == 0 and torch.equal(again, straight)


def test_a_corrupt_manifest_is_named_and_rebuilt_from_the_valid_chunks(tmp_path):
    sampler = make_sampler(PLAN)
    straight, _ = _run(tmp_path, sampler)
    (tmp_path / "chunk_00003.safetensors").unlink()
    (tmp_path / "manifest.json").write_text('{"version": 1, "settin')
    with pytest.warns(ChunkFileWarning, match=rf"manifest {tmp_path / 'manifest.json'} is damaged.*rebuilding"):
        again, result = _run(tmp_path, make_sampler(PLAN), resume=True)
    assert result.replayed_chunks == 3 and torch.equal(again, straight)
    assert json.loads((tmp_path / "manifest.json").read_text())["finished_chunks"] == PLAN.num_chunks


def test_job_keys_separate_jobs_and_match_identical_ones():
    assert job_key({"a": 1}, "h", 3) == job_key({"a": 1}, "h", 3)
    assert len({job_key({"a": 1}, "h", 3), job_key({"a": 2}, "h", 3), job_key({"a": 1}, "g", 3),
                job_key({"a": 1}, "h", 4)}) == 4


# ---------------------------------------------------------------- 6. what a cancel says; temp copies


def test_a_cancel_says_how_many_chunks_were_kept_and_where(tmp_path):
    sampler = make_sampler(PLAN)
    calls = {"n": 0}

    def cancel_in_third_chunk() -> bool:
        calls["n"] += 1
        return calls["n"] > 6  # 2 steps: 2 checks per chunk (before it, between its steps)

    job = JobDir(tmp_path, sampler.settings.to_dict(), "same-inputs", PLAN.num_chunks)
    with pytest.raises(Cancelled) as info:
        sampler.run(FrameCollector(), job=job, cancel=cancel_in_third_chunk)
    message = str(info.value)
    assert "the 3 finished chunk(s) are kept in the job folder" in message and str(tmp_path) in message
    assert "resume from chunk 4" in message


def test_the_video_writer_removes_its_temp_copy_of_an_in_memory_video(tmp_path, tmp_path_factory, monkeypatch):
    pack = import_pack_like_comfyui(tmp_path_factory.mktemp("custom_nodes"))
    video_nodes = pack.nodes.video
    monkeypatch.setattr(video_nodes.host, "temp_directory", lambda: tmp_path / "temp")
    monkeypatch.setattr(video_nodes.host, "output_directory", lambda: tmp_path / "output")
    source = tmp_path / "src.mp4"
    writer = Mp4Writer(source, fps=25)
    writer.write(frames())
    writer.close()

    class InMemoryVideo:  # a VIDEO whose stream source is not a file
        def get_stream_source(self):
            return object()

        def save_to(self, path):
            Path(path).write_bytes(source.read_bytes())

    for _ in range(3):
        video_nodes.VideoWriter().write("TalkGen/v", 25.0, 17, video=InMemoryVideo())
    assert list((tmp_path / "temp" / "talkgen").iterdir()) == []
    assert len(list((tmp_path / "output" / "TalkGen").glob("v_*.mp4"))) == 3


def test_a_finished_automatic_job_folder_is_removed_but_nothing_else(tmp_path):
    folder = tmp_path / "jobs" / "key"
    with FolderLock(folder):
        job = JobDir(folder, {}, "h", 1)
        job.save_chunk(0, torch.zeros(1, 2, 1, 1, 1))
    remove_job(folder)
    assert not folder.exists()
    JobDir(folder, {}, "h", 1)
    (folder / "notes.txt").write_text("mine")
    remove_job(folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


# ---------------------------------------------------------------- 7. kills between the steps of a save


@pytest.mark.parametrize("point", ["after the chunk file, before the manifest", "inside the chunk's temp file"])
def test_a_kill_between_the_writes_of_a_save_still_resumes_bit_exact(tmp_path, monkeypatch, point):
    straight, _ = _run(tmp_path / "straight", make_sampler(PLAN))
    writes = {"n": 0}
    real_write = jobdir_module.write_bytes_atomic

    def killed_at_the_third_manifest_write(path, data):  # the first is the new job's, then one per chunk
        writes["n"] += 1
        if writes["n"] == 3:
            raise KeyboardInterrupt  # stands for kill -9: nothing after this point runs
        real_write(path, data)

    if point.startswith("after"):
        monkeypatch.setattr(jobdir_module, "write_bytes_atomic", killed_at_the_third_manifest_write)
        with pytest.raises(KeyboardInterrupt):
            _run(tmp_path / "job", make_sampler(PLAN))
        monkeypatch.undo()
    else:
        _run(tmp_path / "job", make_sampler(PLAN))
        for index in (2, 3):  # as if killed while the third chunk's file was being written
            (tmp_path / "job" / f"chunk_0000{index}.safetensors").unlink()
        (tmp_path / "job" / ".chunk_00002.safetensors.k1ll3d.safetensors").write_bytes(b"half")
        manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
        (tmp_path / "job" / "manifest.json").write_text(json.dumps({**manifest, "finished_chunks": 2}))
    again, result = _run(tmp_path / "job", make_sampler(PLAN), resume=True)
    assert result.replayed_chunks == (1 if point.startswith("after") else 2) and torch.equal(again, straight)


def test_the_samplers_temp_videos_do_not_pile_up(tmp_path):
    prune = import_pack_like_comfyui(tmp_path).nodes.sampler.prune_temp_videos
    folder = tmp_path / "videos"
    folder.mkdir()
    for index in range(20):
        video = folder / f"{index:02d}.mp4"
        video.write_bytes(b"x")
        os.utime(video, ns=(index * 10**9, index * 10**9))
    deleted = prune(folder, keep=16)
    assert sorted(p.name for p in deleted) == ["00.mp4", "01.mp4", "02.mp4", "03.mp4"]
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:02d}.mp4" for i in range(4, 20)]
