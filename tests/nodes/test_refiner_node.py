"""The Refiner node: exactly one video source, and the sampler's VIDEO refined into frames and a video."""

from __future__ import annotations

import json

import pytest

from helpers.demo_workflow import demo_graph
from helpers.native_doubles import NATIVE_DOUBLES
from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui
from helpers.workflow_executor import run_api_workflow


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return import_pack_like_comfyui(tmp_path_factory.mktemp("custom_nodes"))


def test_refiner_needs_exactly_one_video_source(pack):
    node = pack.NODE_CLASS_MAPPINGS["TalkGenRefiner"]()
    with pytest.raises(ValueError, match="exactly one of video or frames"):
        node.refine(None, None, None, None, 2.0, 0.5, 42)


def test_refiner_node_passes_speech_reference_and_settings_to_the_core(pack, monkeypatch, tmp_path):
    graph = demo_graph(json.loads((REPO_ROOT / "workflows" / "api" / "talkgen_demo_refined.json").read_text()), "none")
    refiner = next(k for k, v in graph.items() if v["class_type"] == "TalkGenRefiner")
    graph[refiner]["inputs"].update(scale=2.0, strength=0.4, seed=7, steps=3, condition_noise=0.3)
    calls = []

    class Stop(Exception):
        pass

    def recording_refine(video, image, **kwargs):
        calls.append((video, image, kwargs))
        raise Stop

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pack.nodes.refiner, "refine_video", recording_refine)
    with pytest.raises(Stop):
        run_api_workflow(graph, {**pack.NODE_CLASS_MAPPINGS, **NATIVE_DOUBLES})
    video, image, kwargs = calls[0]
    assert str(video).endswith(".mp4") and image.shape[0] == 3 and image.min() >= -1.0
    assert (kwargs["scale"], kwargs["condition_noise"], kwargs["seed"], kwargs["steps"]) == (2.0, 0.3, 7, 3)
    assert "strength" not in kwargs  # the embedded refiner's route takes condition_noise only
    assert kwargs["models"].dit.scale == 2 and kwargs["models"].sampling_preset == "demo-refiner"
    assert kwargs["speech"].fps == kwargs["fps"] == 25.0 and kwargs["job_root"] is not None
