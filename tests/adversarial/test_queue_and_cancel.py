"""Attacks on the batch queue (restarting and forgetful servers, inputs changed under the same name, bad
settings in a dry run) and on cancel (it must act inside a long model pass, not only between solver steps)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import wave
from pathlib import Path

import pytest
import torch
from PIL import Image

from batch_queue.conftest import DUB_WORKFLOW, FakeComfyUI
from batch_queue.conftest import make_fake_server as servers  # noqa: F401 (a fixture)
from talkgen_core.models import build_dit, build_vae
from talkgen_core.models.configs import variant
from talkgen_core.queue import fingerprint
from talkgen_core.queue.batch import BatchOptions, run_batch
from talkgen_core.queue.comfyui_client import ComfyUIClient, PollSchedule, ServerWait
from talkgen_core.queue.comfyui_runner import ComfyUIRunner
from talkgen_core.queue.journal import read_journal
from talkgen_core.queue.manifest import Job, read_manifest
from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.sampling.guidance import GuidanceConfig
from talkgen_core.sampling.jobdir import JobDir
from talkgen_core.sampling.references import StillReference
from talkgen_core.sampling.streaming import Cancelled, StreamConditioning, StreamingSampler, StreamSettings
from talkgen_core.video.writer import FrameCollector

FAST_POLL = PollSchedule(first=0.01, growth=1.5, longest=0.05)
RESTART_WAIT = ServerWait(limit=10.0, schedule=PollSchedule(first=0.05, growth=1.5, longest=0.2))


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4", "a.wav", "b.wav", "c.wav"):
        (folder / name).write_bytes(f"content of {name}".encode())
    (folder / "dub.api.json").write_text(json.dumps(DUB_WORKFLOW))
    return folder


def queue_options(media: Path, rows: list[str], *servers: str, **extra) -> BatchOptions:
    manifest = media / "jobs.csv"
    manifest.write_text("\n".join(["video,audio,output,seed,steps", *rows]) + "\n")
    extra.setdefault("server_wait", RESTART_WAIT)
    return BatchOptions(manifest, workflow=media / "dub.api.json", servers=servers, output_dir=media / "out",
                        poll=FAST_POLL, **extra)


THREE_JOBS = ["a.mp4,a.wav,one,1,2", "b.mp4,b.wav,two,2,2", "c.mp4,c.wav,three,3,2"]


def queued_outputs(server: FakeComfyUI) -> list[str]:
    return [json.loads(r.body)["prompt"]["4"]["inputs"]["filename_prefix"]
            for r in server.routes_called("POST", "/prompt")]


# -- 1. a server that restarts is waited for; the job it lost is queued again, the others still run ---------------


def test_a_server_restarting_mid_job_is_waited_for_and_the_lost_job_is_queued_again(media, servers) -> None:
    server = servers(polls_until_done=6, restart_at_poll=(3, 1.0))  # down 1 s while job 1 runs
    report = io.StringIO()
    status = run_batch(queue_options(media, THREE_JOBS, server.url), stream=report)
    assert status == 0, report.getvalue()
    assert server.restarts == 1
    assert queued_outputs(server) == ["one", "one", "two", "three"]  # job 1 again, then the rest
    assert sorted(p.name for p in (media / "out").glob("*.mp4")) == ["one.mp4", "three.mp4", "two.mp4"]


def test_a_server_down_when_the_next_job_starts_is_waited_for(media, servers) -> None:
    server = servers(polls_until_done=1)
    (job,) = read_manifest(queue_options(media, THREE_JOBS[:1], server.url).manifest)
    runner = ComfyUIRunner(ComfyUIClient(server.url), DUB_WORKFLOW, 30.0, FAST_POLL, RESTART_WAIT)
    server.restart(down_for=0.8)  # uploads are refused at first
    (written,) = runner.run(job, media / "out", threading.Event())
    assert written.read_bytes().startswith(b"content of a.mp4|content of a.wav|")
    assert queued_outputs(server) == ["one"]  # a job that never reached the server costs no retry


def test_a_server_that_stays_down_past_server_wait_fails_with_the_option_to_raise(media, servers) -> None:
    server = servers(polls_until_done=6, restart_at_poll=(2, 30.0))
    short = ServerWait(limit=0.5, schedule=FAST_POLL)
    report = io.StringIO()
    assert run_batch(queue_options(media, THREE_JOBS[:2], server.url, server_wait=short), stream=report) == 1
    assert "--server-wait" in report.getvalue().splitlines()[-1]


# -- 2. a prompt the server forgot is noticed at once, not after the whole --timeout ------------------------------


def test_a_forgotten_prompt_is_queued_again_promptly(media, servers) -> None:
    server = servers(polls_until_done=3, forgetful=1)
    started = time.monotonic()
    report = io.StringIO()
    assert run_batch(queue_options(media, THREE_JOBS[:1], server.url, job_timeout=5.0), stream=report) == 0, (
        report.getvalue())
    assert time.monotonic() - started < 4.0  # before the fix it sat out the whole timeout, then failed
    assert queued_outputs(server) == ["one", "one"]


def test_a_job_the_server_loses_every_time_fails_alone_after_its_retries(media, servers) -> None:
    server = servers(polls_until_done=2, forgetful=2)  # job 1's first try and its retry are both lost
    report = io.StringIO()
    assert run_batch(queue_options(media, THREE_JOBS[:2], server.url, retries=1), stream=report) == 1
    latest = {r.output: r for r in read_journal(media / "out" / "jobs.journal.jsonl").latest_by_key().values()}
    assert latest["one"].status == "failed" and "lost this job 2 time(s)" in latest["one"].reason
    assert latest["two"].status == "done"
    assert queued_outputs(server) == ["one", "one", "two"]


# -- 3. the journal knows inputs by content ----------------------------------------------------------------------


class CountingRunner:
    name = "counting"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def check(self) -> None:
        pass

    def run(self, job: Job, output_dir: Path, cancel: threading.Event) -> list[Path]:
        self.ran.append(job.output)
        out = output_dir / f"{job.output}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"video")
        return [out]


def age(path: Path, seconds: float = 60.0) -> None:
    stamp = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(stamp, stamp))


def test_an_input_replaced_under_the_same_name_runs_again_and_unchanged_ones_skip(media, monkeypatch) -> None:
    options = BatchOptions(media / "jobs.csv", output_dir=media / "out")
    options.manifest.write_text("video,audio,output\na.mp4,a.wav,one\nb.mp4,b.wav,two\n")
    for name in ("a.mp4", "a.wav", "b.mp4", "b.wav"):
        age(media / name)
    first = CountingRunner()
    assert run_batch(options, runners=[first], stream=io.StringIO()) == 0
    assert first.ran == ["one", "two"]

    reads: list[str] = []
    real_sha256 = fingerprint.file_sha256
    monkeypatch.setattr(fingerprint, "file_sha256", lambda path: reads.append(Path(path).name) or real_sha256(path))
    unchanged = CountingRunner()
    assert run_batch(options, runners=[unchanged], stream=io.StringIO()) == 0
    assert unchanged.ran == [] and reads == []  # skipped, and no file was read to know it

    (media / "a.wav").write_bytes(b"a different take")  # same name, new content
    changed = CountingRunner()
    assert run_batch(options, runners=[changed], stream=io.StringIO()) == 0
    assert changed.ran == ["one"] and reads == ["a.wav"]


# -- 5. cancel inside a model pass ------------------------------------------------------------------------------

CANCEL_PLAN = ChunkPlan(29, chunk_frames=17, context_frames=5)  # 2 chunks of 5 latent frames
CANCEL_SETTINGS = StreamSettings(steps=2, guidance=GuidanceConfig(2.0, 3.0), colour_strength=0.0)


@pytest.fixture(scope="module")
def tiny_models():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dit, vae = build_dit(variant("tiny", num_layers=4), seed=0).eval(), build_vae("tiny")
        g = torch.Generator().manual_seed(1)
        image = torch.rand(3, 16, 16, generator=g) * 2 - 1
        features = torch.randn(CANCEL_PLAN.total_frames, dit.config.audio_layers, dit.config.audio_dim, generator=g)
        context = torch.randn(1, 3, dit.config.text_dim, generator=g)
    return dit, vae, image, features, context


def tiny_sampler(tiny_models) -> StreamingSampler:
    dit, vae, image, features, context = tiny_models
    return StreamingSampler(dit, vae, CANCEL_PLAN, 25, StillReference(image, (16, 16)),
                            StreamConditioning([features], context), CANCEL_SETTINGS)


def tiny_job(path: Path, resume: bool = False) -> JobDir:
    return JobDir(path, CANCEL_SETTINGS.to_dict(), "inputs", CANCEL_PLAN.num_chunks, resume=resume)


def test_cancel_stops_the_dit_forward_between_blocks_and_keeps_the_finished_chunk(tiny_models, tmp_path) -> None:
    dit = tiny_models[0]
    stop_after_block = 2
    second_chunk_blocks = []
    armed = {"on": False, "stop": False}

    def count_block(module, args, output) -> None:
        if armed["on"]:
            second_chunk_blocks.append(module)
            armed["stop"] = len(second_chunk_blocks) >= stop_after_block  # the user presses Cancel now

    def arm_after_first_chunk(event) -> None:
        armed["on"] = armed["on"] or (event.kind == "chunk" and event.chunk == 0)

    handles = [block.register_forward_hook(count_block) for block in dit.blocks]
    try:
        with pytest.raises(Cancelled, match="after 1 of 2 chunks") as info:
            tiny_sampler(tiny_models).run(FrameCollector(), job=tiny_job(tmp_path / "job"),
                                          progress=arm_after_first_chunk, cancel=lambda: armed["stop"])
    finally:
        for handle in handles:
            handle.remove()
    # it stopped inside the first forward of chunk 2: the 2 remaining blocks of that forward never ran
    assert len(second_chunk_blocks) == stop_after_block < len(dit.blocks)
    assert info.value.finished_chunks == 1
    assert tiny_job(tmp_path / "job", resume=True).finished == 1  # the first chunk's latents are kept
    assert not any(block._forward_pre_hooks for block in dit.blocks)  # the run's hooks are gone again


def test_cancel_stops_a_streamed_vae_decode_between_latent_frames(tiny_models, tmp_path) -> None:
    sampler = tiny_sampler(tiny_models)
    decoded = []
    real_decode_chunk = sampler.vae.decode_chunk

    def counting_decode_chunk(latents, state):
        decoded.append(latents.shape[2])
        return real_decode_chunk(latents, state)

    sampler.vae.decode_chunk = counting_decode_chunk
    try:
        with pytest.raises(Cancelled, match="after 1 of 2 chunks"):
            sampler.run(FrameCollector(), job=tiny_job(tmp_path / "job"), cancel=lambda: len(decoded) >= 1)
    finally:
        del sampler.vae.decode_chunk
    assert decoded == [1]  # one latent frame of chunk 1's five, then the check stopped the decode
    assert tiny_job(tmp_path / "job", resume=True).finished == 1  # its latents were saved before decoding


def test_a_long_step_reports_progress_from_inside_the_forward(tiny_models) -> None:
    events = []
    tiny_sampler(tiny_models).run(FrameCollector(), progress=events.append, block_report_s=0.0)
    inside = [e for e in events if e.kind == "block"]
    assert inside, "no progress between solver steps"
    first_step = [e.step_fraction for e in inside if e.chunk == 0 and e.step == 0]
    assert first_step == sorted(first_step) and 0 < first_step[-1] < 1
    assert all(0 <= e.step_fraction < 1 for e in inside)


# -- 4. the in-process dry run checks each job's settings and files ---------------------------------------------


def test_the_in_process_dry_run_reports_bad_settings_and_unreadable_files(tmp_path) -> None:
    Image.new("RGB", (32, 32), (200, 120, 80)).save(tmp_path / "face.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    with wave.open(str(tmp_path / "voice.wav"), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(b"\0\0" * 1600)
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("image,audio,output,audio_cfg,solver,size,stepz\n"
                        "face.png,voice.wav,good,4.5,,,\n"
                        "face.png,voice.wav,nan_cfg,nan,,,\n"
                        "face.png,voice.wav,names,,nope,999p,\n"
                        "face.png,voice.wav,typo,,,,8\n"
                        "broken.png,voice.wav,picture,,,,\n")
    report = io.StringIO()
    assert run_batch(BatchOptions(manifest, dry_run=True), stream=report) == 1
    lines = {line.split(":")[0].strip(): line for line in report.getvalue().splitlines() if "job " in line}
    assert "would run job 1 (row 2) 'good'" in report.getvalue()
    assert "audio_cfg must be a number, got 'nan'" in lines["job 2 (row 3)"]
    assert "solver" in lines["job 3 (row 4)"] and "999p" in lines["job 3 (row 4)"]
    assert "unknown setting(s) stepz" in lines["job 4 (row 5)"]
    assert "broken.png cannot be used" in lines["job 5 (row 6)"]
    assert not list(tmp_path.glob("*.mp4")) and not (tmp_path / "jobs.journal.jsonl").exists()  # nothing ran
