"""The ComfyUI runner end to end against fake servers on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from talkgen_core.queue.batch import BatchOptions, run_batch
from talkgen_core.queue.comfyui_client import (
    ComfyUIClient, PollSchedule, PromptRejected, ServerWait, encode_multipart,
)
from talkgen_core.queue.journal import read_journal

FAST_POLL = PollSchedule(first=0.01, growth=1.5, longest=0.05)
SHORT_SERVER_WAIT = ServerWait(limit=0.5, schedule=FAST_POLL)  # a dead server is given up on quickly


def options(manifest: Path, workflow: Path, *servers: str, **extra) -> BatchOptions:
    extra.setdefault("server_wait", SHORT_SERVER_WAIT)
    return BatchOptions(manifest, workflow=workflow, servers=servers, output_dir=manifest.parent / "out",
                        poll=FAST_POLL, **extra)


def write_manifest(media: Path, *rows: str, header: str = "video,audio,output,seed,steps") -> Path:
    manifest = media / "jobs.csv"
    manifest.write_text("\n".join([header, *rows]) + "\n")
    return manifest


def test_jobs_run_end_to_end_and_one_failure_does_not_stop_the_others(media, workflow_file, fake_server) -> None:
    manifest = write_manifest(
        media,
        "a.mp4,a.wav,dubs/first,42,8",
        "b.mp4,b.wav,second,13,4",  # the fake sampler fails on seed 13
        "c.mp4,c.wav,third,5,0",  # steps 0: the server refuses the graph with node_errors
        "d.mp4,d.wav,fourth,7,2",
    )
    report = io.StringIO()
    status = run_batch(options(manifest, workflow_file, fake_server.url), stream=report)
    lines = report.getvalue().splitlines()
    assert status == 1, "\n".join(lines)

    out = media / "out"
    first = (out / "dubs" / "first.mp4").read_bytes()
    assert first.startswith(b"content of a.mp4|content of a.wav|")
    assert json.loads(first.split(b"|")[-1]) == {"audio_cfg": 4.0, "seed": 42, "steps": 8}
    assert (out / "fourth.mp4").read_bytes().startswith(b"content of d.mp4|content of d.wav|")
    assert not (out / "second.mp4").exists() and not (out / "third.mp4").exists()
    assert not list(out.rglob("preview*"))  # temp previews are not fetched

    latest = {r.output: r for r in read_journal(out / "jobs.journal.jsonl").latest_by_key().values()}
    assert latest["dubs/first"].status == "done" and latest["fourth"].status == "done"
    assert "RuntimeError: fake sampler failure for seed 13" in latest["second"].reason
    assert "refused the workflow" in latest["third"].reason and "node 3 (TalkGenFakeDub)" in latest["third"].reason
    assert latest["dubs/first"].runner == fake_server.url

    # what went over the wire: multipart uploads, prompts with the uploaded names, one job at a time
    uploads = fake_server.routes_called("POST", "/upload/image")
    assert len(uploads) == 8 and all(u.headers["content-type"].startswith("multipart/form-data") for u in uploads)
    queued = [json.loads(r.body) for r in fake_server.routes_called("POST", "/prompt")]
    assert len(queued) == 4
    assert queued[0]["prompt"]["1"]["inputs"]["file"] in fake_server.inputs
    assert queued[0]["prompt"]["4"]["inputs"]["filename_prefix"] == "dubs/first"
    assert fake_server.overlapping_prompts == 0
    assert "second" in lines[-1] or "job 2 (row 3)" in lines[-1]


def test_jobs_spread_over_two_servers(media, workflow_file, make_fake_server) -> None:
    servers = [make_fake_server(polls_until_done=3), make_fake_server(polls_until_done=3)]
    manifest = write_manifest(media, *(f"{c}.mp4,{c}.wav,out_{c},{i + 1},2" for i, c in enumerate("abcd")))
    assert run_batch(options(manifest, workflow_file, *(s.url for s in servers)), stream=io.StringIO()) == 0
    prompts_per_server = [len(s.routes_called("POST", "/prompt")) for s in servers]
    assert sum(prompts_per_server) == 4 and min(prompts_per_server) >= 1, prompts_per_server
    assert all(s.overlapping_prompts == 0 for s in servers)
    assert sorted(p.name for p in (media / "out").glob("*.mp4")) == [f"out_{c}.mp4" for c in "abcd"]


def test_an_unreachable_server_is_skipped_and_its_jobs_go_elsewhere(media, workflow_file, fake_server) -> None:
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens there
    manifest = write_manifest(media, "a.mp4,a.wav,one,1,2", "b.mp4,b.wav,two,2,2")
    report = io.StringIO()
    assert run_batch(options(manifest, workflow_file, dead, fake_server.url), stream=report) == 0
    assert f"skipping {dead}" in report.getvalue()
    assert len(fake_server.routes_called("POST", "/prompt")) == 2


def test_no_usable_server_and_unknown_node_classes_stop_before_running(
    media, workflow_file, fake_server, capsys
) -> None:
    manifest = write_manifest(media, "a.mp4,a.wav,one,1,2")
    assert run_batch(options(manifest, workflow_file, "http://127.0.0.1:9"), stream=io.StringIO()) == 2
    assert "no runner can take jobs" in capsys.readouterr().err

    workflow = json.loads(workflow_file.read_text())
    workflow["6"] = {"class_type": "TalkGenNotInstalled", "inputs": {}}
    workflow_file.write_text(json.dumps(workflow))
    assert run_batch(options(manifest, workflow_file, fake_server.url), stream=io.StringIO()) == 2
    assert "TalkGenNotInstalled" in capsys.readouterr().err
    assert not fake_server.routes_called("POST", "/prompt")


def test_a_job_that_never_finishes_times_out_and_is_removed(media, workflow_file, make_fake_server) -> None:
    slow = make_fake_server(polls_until_done=10_000)
    manifest = write_manifest(media, "a.mp4,a.wav,one,1,2")
    report = io.StringIO()
    assert run_batch(options(manifest, workflow_file, slow.url, job_timeout=0.3), stream=report) == 1
    assert "did not finish within 0.3 s" in report.getvalue()
    prompt_id = json.loads(slow.routes_called("POST", "/prompt")[0].body)["prompt_id"]
    assert slow.deleted == [prompt_id] and slow.interrupted == [prompt_id]


def test_workflow_mismatch_is_reported_per_job_before_anything_is_uploaded(media, workflow_file, fake_server) -> None:
    rows = ("a.mp4,a.wav,b.wav,one,1", "c.mp4,c.wav,,two,2")
    manifest = write_manifest(media, *rows, header="video,audio,audio2,output,seed")
    report = io.StringIO()
    assert run_batch(options(manifest, workflow_file, fake_server.url), stream=report) == 1
    assert "job 1 (row 2): does not fit the workflow: the workflow has 1 audio input(s)" in report.getvalue()
    assert len(fake_server.routes_called("POST", "/prompt")) == 1


def test_client_routes_directly(fake_server, media) -> None:
    client = ComfyUIClient(fake_server.url + "/")
    assert "LoadAudio" in client.object_info()
    uploaded = client.upload_file(media / "a.wav", "voice.wav", subfolder="talkgen")
    assert uploaded.reference == "talkgen/voice.wav" and fake_server.inputs["talkgen/voice.wav"] == b"content of a.wav"
    with pytest.raises(PromptRejected, match="Cannot execute because node Nope does not exist"):
        client.queue_prompt({"1": {"class_type": "Nope", "inputs": {}}})
    with pytest.raises(ValueError, match="not an http URL"):
        ComfyUIClient("127.0.0.1:8188")


def test_multipart_body_is_well_formed() -> None:
    body, content_type = encode_multipart({"type": "input"}, "image", 'we"ird.wav', b"\x00\x01binary")
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"--{boundary}--\r\n".encode())
    assert b'filename="we_ird.wav"' in body and b"Content-Type: audio/" in body and b"\x00\x01binary\r\n" in body


def test_a_server_that_dies_mid_job_hands_the_job_to_another(media, workflow_file, make_fake_server) -> None:
    doomed = make_fake_server(polls_until_done=10_000)  # its job never finishes: it has to be handed over
    steady = make_fake_server(polls_until_done=15)
    threading.Timer(0.3, doomed.stop).start()
    manifest = write_manifest(media, "a.mp4,a.wav,one,1,2", "b.mp4,b.wav,two,2,2")
    report = io.StringIO()
    assert run_batch(options(manifest, workflow_file, doomed.url, steady.url), stream=report) == 0, report.getvalue()
    assert f"{doomed.url} takes no more jobs" in report.getvalue()
    assert len(doomed.routes_called("POST", "/prompt")) == 1
    assert len(steady.routes_called("POST", "/prompt")) == 2
    assert sorted(p.name for p in (media / "out").glob("*.mp4")) == ["one.mp4", "two.mp4"]
