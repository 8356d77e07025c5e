"""Every shipped workflow: the UI/API twins agree, every node and input exists, and each graph runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image
from helpers.demo_workflow import demo_graph, make_demo_lora
from helpers.native_doubles import NATIVE_DOUBLES
from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui
from helpers.workflow_executor import WorkflowError, run_api_workflow

WORKFLOWS = REPO_ROOT / "workflows"
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
NATIVE_UI_TYPES = {"LoadImage", "LoadAudio", "LoadVideo", "VAELoader", "CLIPLoader", "CLIPTextEncode",
                   "CLIPVisionLoader", "CLIPVisionEncode", "UNETLoader", "ModelPatchLoader", "Note"}


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return import_pack_like_comfyui(tmp_path_factory.mktemp("custom_nodes"))


def test_the_nine_workflows_ship_as_ui_templates_with_api_twins_and_thumbnails():
    names = {p.stem for p in API_FILES}
    assert len(names) == 9 and {"talkgen_demo", "talkgen_demo_two_speakers", "talkgen_demo_refined",
                                "infinitetalk_refined"} <= names
    assert {p.stem for p in WORKFLOWS.glob("*.json")} == names  # templates: UI workflows only
    for name in names:
        ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
        assert "nodes" in ui and "links" in ui, f"{name}.json is not a UI workflow"
        with Image.open(WORKFLOWS / f"{name}.jpg") as thumbnail:
            assert thumbnail.format == "JPEG" and min(thumbnail.size) >= 128


def _boxes_overlap(a: dict, b: dict) -> bool:
    (ax, ay), (aw, ah) = a["pos"], a["size"]
    (bx, by), (bw, bh) = b["pos"], b["size"]
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


@pytest.mark.parametrize("api_file", API_FILES, ids=lambda p: p.stem)
def test_ui_nodes_do_not_overlap_and_every_loader_is_used(api_file):
    ui = json.loads((WORKFLOWS / api_file.name).read_text())
    nodes = ui["nodes"]
    overlapping = [(a["id"], b["id"]) for i, a in enumerate(nodes) for b in nodes[i + 1:] if _boxes_overlap(a, b)]
    assert overlapping == []
    used = {link[1] for link in ui["links"]}
    unused = [n["type"] for n in nodes if ("Load" in n["type"] or "Encode" in n["type"]) and n["id"] not in used]
    assert unused == [], f"loaders whose outputs go nowhere: {unused}"


@pytest.mark.parametrize("api_file", API_FILES, ids=lambda p: p.stem)
def test_model_files_carry_folder_and_download_metadata(api_file):
    ui = json.loads((WORKFLOWS / api_file.name).read_text())
    model_values = {v for n in ui["nodes"] for v in n["widgets_values"] if isinstance(v, str)
                    and v.endswith(".safetensors")}
    listed = {m["name"]: m for m in ui.get("models", [])}
    assert model_values <= set(listed)
    for model in listed.values():
        assert model["directory"] in {"diffusion_models", "model_patches", "audio_encoders", "vae", "text_encoders",
                                      "clip_vision", "loras"}
        assert model["url"].startswith("https://huggingface.co/") and model["url"].endswith(model["name"])
    for node in ui["nodes"]:
        for model in node["properties"].get("models", []):
            assert model["name"] in node["widgets_values"]


def test_ui_twins_are_generated_from_the_api_graphs():
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "build_workflows.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("api_file", API_FILES, ids=lambda p: p.stem)
def test_ui_twin_is_consistent(api_file, pack):
    ui = json.loads((WORKFLOWS / api_file.name).read_text())
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


@pytest.mark.parametrize("api_file", API_FILES, ids=lambda p: p.stem)
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
