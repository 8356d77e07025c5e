"""Against a real ComfyUI (COMFYUI_DIR): the server lists every node and runs every shipped workflow."""

from __future__ import annotations

import json

import pytest
from helpers.comfyui_server import SKIP_REASON, comfyui_dir, get_json, run_prompt, running_comfyui
from helpers.demo_workflow import demo_graph, make_demo_lora
from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(comfyui_dir() is None, reason=SKIP_REASON)]
LORA_NAME = "talkgen-demo-lora.safetensors"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui-base")
    make_demo_lora(base / "models" / "loras" / LORA_NAME)
    with running_comfyui(base) as url:
        yield url


def test_object_info_lists_every_node(server, tmp_path):
    info = get_json(f"{server}/object_info")
    pack = import_pack_like_comfyui(tmp_path)
    assert sorted(set(pack.NODE_CLASS_MAPPINGS) - set(info)) == []
    assert info["TalkGenSampler"]["category"].startswith("TalkGen")


@pytest.mark.parametrize("api_file", sorted((REPO_ROOT / "workflows").glob("*.api.json")), ids=lambda p: p.name)
def test_workflow_runs_in_comfyui(server, api_file):
    graph = demo_graph(json.loads(api_file.read_text()), LORA_NAME)
    outputs = run_prompt(server, graph)
    writer = next(i for i, n in graph.items() if n["class_type"] == "TalkGenVideoWriter")
    files = outputs[writer]["images"]
    assert files and files[0]["filename"].endswith(".mp4")
