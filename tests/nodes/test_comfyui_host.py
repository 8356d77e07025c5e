"""Against a real ComfyUI (COMFYUI_DIR): the server lists every node and template, runs every shipped workflow,
runs the demo as shipped, resumes after a cancel, and survives bad input. Each server has its own
``--base-directory``, so no test sees another's models, inputs or outputs."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from helpers.comfyui_server import (SKIP_REASON, comfyui_dir, error_message, get_json, output_file, post_json,
                                    queue_prompt, run_prompt, running_comfyui, wait_for_history)
from helpers.demo_workflow import demo_graph, make_demo_lora
from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(comfyui_dir() is None, reason=SKIP_REASON)]
LORA_NAME = "talkgen-demo-lora.safetensors"
WORKFLOWS = REPO_ROOT / "workflows"
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))


def _api(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def _writer_record(graph: dict, outputs: dict) -> dict:
    writer = next(i for i, n in graph.items() if n["class_type"] == "TalkGenVideoWriter")
    return outputs[writer]["images"][0]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui-base")
    make_demo_lora(base / "models" / "loras" / LORA_NAME)
    return base


@pytest.fixture(scope="module")
def server(base):
    with running_comfyui(base) as url:
        yield url


def test_object_info_lists_every_node(server, tmp_path):
    info = get_json(f"{server}/object_info")
    pack = import_pack_like_comfyui(tmp_path)
    assert sorted(set(pack.NODE_CLASS_MAPPINGS) - set(info)) == []
    assert info["TalkGenSampler"]["category"].startswith("TalkGen")


def test_templates_are_the_ui_workflows_and_each_opens_as_one(server):
    names = get_json(f"{server}/workflow_templates")["ComfyUI-TalkGen"]
    assert sorted(names) == sorted(p.stem for p in API_FILES)
    for name in names:
        quoted = urllib.parse.quote(name)
        document = get_json(f"{server}/api/workflow_templates/ComfyUI-TalkGen/{quoted}.json")
        assert {"nodes", "links"} <= set(document), f"template {name} is not a UI workflow"
        with urllib.request.urlopen(f"{server}/api/workflow_templates/ComfyUI-TalkGen/{quoted}.jpg") as answer:
            assert answer.headers["Content-Type"] == "image/jpeg" and len(answer.read()) > 1000


@pytest.mark.parametrize("api_file", API_FILES, ids=lambda p: p.stem)
def test_workflow_runs_in_comfyui(server, base, api_file):
    """Every shipped graph's wiring, on the embedded demo model (the two-speaker one is its embedded twin)."""
    graph = demo_graph(json.loads(api_file.read_text()), LORA_NAME)
    record = _writer_record(graph, run_prompt(server, graph))
    assert record["filename"].endswith(".mp4") and output_file(base, record).stat().st_size > 1000


def test_model_folders_are_registered(server):
    folders = get_json(f"{server}/models")
    assert {"diffusion_models", "model_patches", "audio_encoders", "vae", "loras"} <= set(folders)


@pytest.mark.parametrize("name", ["talkgen_demo", "talkgen_demo_two_speakers"])
def test_the_demo_workflows_run_as_shipped(tmp_path, name):
    """No file copied by hand: the pack puts its example inputs where Load Image / Load Audio find them. The
    two-speaker demo runs two faces and two voices on the embedded model."""
    with running_comfyui(tmp_path) as url:
        inputs = get_json(f"{url}/object_info/LoadImage")["LoadImage"]["input"]["required"]["image"][0]
        assert {"talkgen_face.png", "talkgen_two_people.png"} <= set(inputs)
        graph = _api(name)
        record = _writer_record(graph, run_prompt(url, graph))
        assert output_file(tmp_path, record).stat().st_size > 1000


def _first_chunk_written(base, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while not (found := list(base.rglob("chunk_00000.safetensors"))):
        assert time.monotonic() < deadline, "no chunk was finished in time"
        time.sleep(0.1)
    return found[0]


def test_cancel_then_requeue_resumes_to_the_same_video(tmp_path):
    """Cancel (/interrupt) after the first chunk, queue the same prompt again: it resumes from the kept chunk
    (no job folder named by hand) and writes the same bytes as a run that was never cancelled."""
    graph = demo_graph(_api("talkgen_demo"), "none")
    with running_comfyui(tmp_path) as url:
        cancelled = queue_prompt(url, graph)
        kept = _first_chunk_written(tmp_path)
        post_json(f"{url}/interrupt", {})
        entry = wait_for_history(url, cancelled)
        kinds = [kind for kind, _ in entry["status"]["messages"]]
        assert entry["status"]["status_str"] == "error" and "execution_interrupted" in kinds
        assert kept.is_file()  # the finished chunk survived the cancel
        resumed = output_file(tmp_path, _writer_record(graph, run_prompt(url, graph)))
        fresh_graph = json.loads(json.dumps(graph))
        fresh_graph["8"]["inputs"]["job_dir"] = "never-cancelled"
        fresh = output_file(tmp_path, _writer_record(fresh_graph, run_prompt(url, fresh_graph)))
        assert resumed != fresh and resumed.read_bytes() == fresh.read_bytes()
        log = (tmp_path / "server.log").read_text(errors="replace")
        assert "finished chunk(s) are kept" in log  # the cancel said so
        assert log.count("resumed, 1 of ") == 1  # the re-queue took the kept chunk; the fresh run started anew


def _eight_channel_video(path) -> None:
    from talkgen_core.video.writer import ffmpeg_executable

    subprocess.run([ffmpeg_executable(), "-v", "error", "-y", "-i", str(REPO_ROOT / "example_inputs" / "source.mp4"),
                    "-f", "lavfi", "-i", "sine=frequency=220:duration=3:sample_rate=48000",
                    "-filter_complex", "[1]asplit=8[a][b][c][d][e][f][g][h];"
                                       "[a][b][c][d][e][f][g][h]amerge=inputs=8[m]",
                    "-map", "0:v", "-map", "[m]", "-c:v", "copy", "-c:a", "pcm_s16le", str(path)], check=True)


def test_bad_input_gives_a_node_error_and_the_server_runs_the_next_prompt(tmp_path):
    (tmp_path / "models" / "diffusion_models").mkdir(parents=True)
    (tmp_path / "models" / "diffusion_models" / "broken.safetensors").write_bytes(b"\x10\x00" + b"not a model" * 20)
    demo = demo_graph(_api("talkgen_demo"), "none")
    with running_comfyui(tmp_path) as url:
        (tmp_path / "input").mkdir(exist_ok=True)
        _eight_channel_video(tmp_path / "input" / "eight_channels.mov")
        dubbing = demo_graph(_api("infinitetalk_video_dubbing"), "none")
        loader = next(i for i, n in dubbing.items() if n["class_type"] == "LoadVideo")
        dubbing[loader]["inputs"]["file"] = "eight_channels.mov"
        entry = wait_for_history(url, queue_prompt(url, dubbing))
        if entry["status"]["status_str"] == "error":  # a clear refusal is as good as a dubbed video
            assert "channel" in error_message(entry).lower()
        broken = json.loads(json.dumps(demo))
        broken["1"]["inputs"]["model"] = "broken.safetensors"
        entry = wait_for_history(url, queue_prompt(url, broken))
        assert entry["status"]["status_str"] == "error"
        assert "broken.safetensors" in error_message(entry)
        assert get_json(f"{url}/system_stats")["system"]  # still up
        record = _writer_record(demo, run_prompt(url, demo))
        assert output_file(tmp_path, record).stat().st_size > 1000
