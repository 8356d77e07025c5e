"""Every shipped workflow: the UI/API twins agree, every node and input exists, and each graph runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers.demo_workflow import demo_graph, make_demo_lora
from helpers.native_doubles import NATIVE_DOUBLES
from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui
from helpers.workflow_executor import WorkflowError, run_api_workflow

WORKFLOWS = REPO_ROOT / "workflows"
API_FILES = sorted(WORKFLOWS.glob("*.api.json"))
NATIVE_UI_TYPES = {"LoadImage", "LoadAudio", "LoadVideo", "VAELoader", "CLIPLoader", "CLIPTextEncode",
                   "CLIPVisionLoader", "CLIPVisionEncode", "Note"}


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return import_pack_like_comfyui(tmp_path_factory.mktemp("custom_nodes"))


def test_the_five_workflows_ship_as_twins():
    names = {p.name[: -len(".api.json")] for p in API_FILES}
    assert len(names) == 5 and any("demo" in n for n in names)
    for name in names:
        assert (WORKFLOWS / f"{name}.json").is_file(), f"{name}.json (UI twin) is missing"


def test_ui_twins_are_generated_from_the_api_graphs():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "build_workflows.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("api_file", API_FILES, ids=lambda p: p.name)
def test_ui_twin_is_consistent(api_file, pack):
    ui = json.loads(api_file.with_name(api_file.name.replace(".api.json", ".json")).read_text())
    api = json.loads(api_file.read_text())
    known = set(pack.NODE_CLASS_MAPPINGS) | NATIVE_UI_TYPES
    assert {n["type"] for n in ui["nodes"]} <= known
    assert any(n["type"] == "Note" and "models/" in n["widgets_values"][0] or "demo" in api_file.name
               for n in ui["nodes"] if n["type"] == "Note")
    by_id = {n["id"]: n for n in ui["nodes"]}
    assert {str(i) for i in by_id if by_id[i]["type"] != "Note"} == set(api)
    for link_id, from_id, from_slot, to_id, to_slot, kind in ui["links"]:
        assert by_id[from_id]["outputs"][from_slot]["type"] == kind
        assert by_id[to_id]["inputs"][to_slot]["link"] == link_id


def test_executor_refuses_an_unknown_input(pack):
    graph = {"1": {"class_type": "TalkGenAudioEncoderLoader", "inputs": {"encoder": "x", "bogus": 1}}}
    with pytest.raises(WorkflowError, match="no input named 'bogus'"):
        run_api_workflow(graph, pack.NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize("api_file", API_FILES, ids=lambda p: p.name)
def test_api_workflow_runs_on_the_demo_model(api_file, pack, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside ComfyUI the writer saves under ./output
    lora = make_demo_lora(tmp_path / "loras" / "demo-lora.safetensors")
    graph = demo_graph(json.loads(api_file.read_text()), str(lora))
    outputs = run_api_workflow(graph, {**pack.NODE_CLASS_MAPPINGS, **NATIVE_DOUBLES})
    writer = next(i for i, n in graph.items() if n["class_type"] == "TalkGenVideoWriter")
    saved = outputs[writer][0]
    assert str(saved).endswith(".mp4") and (tmp_path / "output").exists()
    sampler = next(i for i, n in graph.items() if n["class_type"] == "TalkGenSampler")
    embeds = next(i for i, n in graph.items() if n["class_type"] == "TalkGenAudioEmbeds")
    assert outputs[sampler][1] == outputs[embeds][2]  # the video is exactly as long as the audio
