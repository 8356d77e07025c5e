"""The queue client against a real ComfyUI server (``COMFYUI_DIR`` set; ``COMFYUI_PYTHON`` runs it).

The server starts once for this module on 127.0.0.1 with ``--cpu`` and an empty ``--front-end-root``
(see ``helpers.comfyui_server``). Only native nodes are used, so the check is about the HTTP API.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.comfyui_server import SKIP_REASON, comfyui_dir, running_comfyui
from helpers.pack_import import REPO_ROOT

from talkgen_core.queue.batch import BatchOptions, run_batch
from talkgen_core.queue.comfyui_client import ComfyUIClient, PollSchedule
from talkgen_core.queue.journal import read_journal

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(comfyui_dir() is None, reason=SKIP_REASON)]

# LoadImage -> SaveImage saves the job's image; LoadAudio -> PreviewAudio makes the server decode its audio
IMAGE_AND_AUDIO_WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "face.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}},
    "3": {"class_type": "LoadAudio", "inputs": {"audio": "speech.wav"}},
    "4": {"class_type": "PreviewAudio", "inputs": {"audio": ["3", 0]}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("comfyui")
    with running_comfyui(base) as url:
        yield url, base


def test_upload_object_info_and_a_native_prompt(server: tuple[str, Path], tmp_path: Path) -> None:
    url, base = server
    client = ComfyUIClient(url)
    info = client.object_info()
    assert {"EmptyImage", "SaveImage", "LoadImage", "LoadAudio", "LoadVideo", "SaveVideo"} <= set(info)
    assert "image" in info["LoadImage"]["input"]["required"]

    uploaded = client.upload_file(REPO_ROOT / "example_inputs" / "speech.wav", "queue_check.wav")
    assert uploaded.name == "queue_check.wav" and uploaded.type == "input"
    speech = (REPO_ROOT / "example_inputs" / "speech.wav").read_bytes()
    assert (base / "input" / "queue_check.wav").read_bytes() == speech

    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "queue_check"}},
    }
    prompt_id = client.queue_prompt(prompt)
    (output,) = client.wait_for_prompt(prompt_id, timeout=120, schedule=PollSchedule(first=0.1, longest=1.0))
    assert output.filename.startswith("queue_check") and output.type == "output"
    saved = client.download(output, tmp_path / "check.png")
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_queue_runs_a_manifest_and_reports_a_server_side_failure(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    shutil.copy(REPO_ROOT / "example_inputs" / "face.png", tmp_path / "face.png")
    shutil.copy(REPO_ROOT / "example_inputs" / "speech.wav", tmp_path / "speech.wav")
    (tmp_path / "broken.wav").write_bytes(b"RIFF this is not audio")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("image,audio,output\nface.png,speech.wav,good\nface.png,broken.wav,bad\n")
    workflow = tmp_path / "check.api.json"
    workflow.write_text(json.dumps(IMAGE_AND_AUDIO_WORKFLOW))

    report = io.StringIO()
    options = BatchOptions(manifest, workflow=workflow, servers=(url,), output_dir=tmp_path / "out",
                           job_timeout=120, poll=PollSchedule(first=0.1, longest=1.0))
    assert run_batch(options, stream=report) == 1, report.getvalue()
    assert (tmp_path / "out" / "good.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    latest = {r.output: r for r in read_journal(tmp_path / "out" / "jobs.journal.jsonl").latest_by_key().values()}
    assert latest["good"].status == "done"
    assert latest["bad"].status == "failed" and "node 3 (LoadAudio)" in latest["bad"].reason, latest["bad"].reason


def write_tiny_mp4(path: Path, frames: int = 8, size: int = 64) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            pixels = np.full((size, size, 3), index * 30 % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def test_queue_fetches_a_saved_video(server: tuple[str, Path], tmp_path: Path) -> None:
    """LoadVideo.file is filled from the `video` column; SaveVideo's file (listed as animated) is fetched."""
    url, _ = server
    write_tiny_mp4(tmp_path / "clip.mp4")
    shutil.copy(REPO_ROOT / "example_inputs" / "speech.wav", tmp_path / "speech.wav")
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("video,audio,output\nclip.mp4,speech.wav,dubs/clip\n")
    workflow = tmp_path / "video.api.json"
    workflow.write_text(json.dumps({
        "1": {"class_type": "LoadVideo", "inputs": {"file": "example.mp4"}},
        "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "video/ComfyUI",
                                                      "format": "auto", "format.codec": "auto"}},
        "3": {"class_type": "LoadAudio", "inputs": {"audio": "speech.wav"}},
        "4": {"class_type": "PreviewAudio", "inputs": {"audio": ["3", 0]}},
    }))
    report = io.StringIO()
    options = BatchOptions(manifest, workflow=workflow, servers=(url,), output_dir=tmp_path / "out",
                           job_timeout=120, poll=PollSchedule(first=0.1, longest=1.0))
    assert run_batch(options, stream=report) == 0, report.getvalue()
    (saved,) = (tmp_path / "out" / "dubs").iterdir()
    assert saved.name == "clip.mp4" and saved.stat().st_size > 0
