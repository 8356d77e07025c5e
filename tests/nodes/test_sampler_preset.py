"""The Streaming Sampler's ``preset`` input: "auto" keeps the widgets' values, a named preset replaces them."""

from __future__ import annotations

import json

import pytest

from helpers.demo_workflow import demo_graph
from helpers.native_doubles import NATIVE_DOUBLES
from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui
from helpers.workflow_executor import run_api_workflow

WIDGETS = ("steps", "shift", "solver", "text_cfg", "audio_cfg", "chunk_frames", "context_frames")


class Stop(Exception):
    """Raised by the recording generate() once it has the sampler's arguments."""


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return import_pack_like_comfyui(tmp_path_factory.mktemp("custom_nodes"))


def _sampler_call(pack, monkeypatch, tmp_path, preset: str) -> dict:
    graph = demo_graph(json.loads((REPO_ROOT / "workflows" / "api" / "talkgen_demo.json").read_text()), "none")
    sampler_id = next(k for k, v in graph.items() if v["class_type"] == "TalkGenSampler")
    graph[sampler_id]["inputs"].update(preset=preset, steps=3, shift=2.5, text_cfg=1.5)
    calls = []

    def recording_generate(**kwargs):
        calls.append(kwargs)
        raise Stop

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pack.nodes.sampler, "generate", recording_generate)
    with pytest.raises(Stop):
        run_api_workflow(graph, {**pack.NODE_CLASS_MAPPINGS, **NATIVE_DOUBLES})
    assert len(calls) == 1
    return calls[0]


def test_auto_passes_the_widgets_and_a_named_preset_replaces_them(pack, monkeypatch, tmp_path):
    auto = _sampler_call(pack, monkeypatch, tmp_path, "auto")
    assert auto["preset"] == "auto" and (auto["steps"], auto["shift"], auto["text_cfg"]) == (3, 2.5, 1.5)
    named = _sampler_call(pack, monkeypatch, tmp_path, "flashtalk")
    assert named["preset"] == "flashtalk" and all(named[k] is None for k in WIDGETS)


def test_the_preset_input_lists_every_core_preset(pack):
    from talkgen_core.sampling.presets import SAMPLING_PRESETS

    choices, options = pack.NODE_CLASS_MAPPINGS["TalkGenSampler"].INPUT_TYPES()["optional"]["preset"]
    assert choices == list(SAMPLING_PRESETS) and options["default"] == "auto" and options["tooltip"]
