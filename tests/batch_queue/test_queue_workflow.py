from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from talkgen_core.queue.workflow import WorkflowError, fill_workflow, find_slots, load_api_workflow


def fill(workflow: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = dict(
        source_kind="video", source_name="up_a.mp4", audio_names=["up_a.wav"], output_prefix="dubs/one", settings={}
    )
    arguments.update(overrides)
    return fill_workflow(workflow, **arguments)


def test_slots_follow_class_and_input_names(dub_workflow: dict[str, Any]) -> None:
    dub_workflow["7"] = {"class_type": "TalkGenAudioEmbeds", "inputs": {"audio": "voice2.wav", "fps": 25.0}}
    dub_workflow["10"] = {"class_type": "TalkGenReference", "inputs": {"image": ["1", 0]}}  # a link: not a slot
    slots = find_slots(dub_workflow)
    assert [s.describe() for s in slots.video] == ["node 1 LoadVideo.file"]
    assert [s.node_id for s in slots.audio] == ["2", "7"]  # ascending node id
    assert slots.image == ()
    assert [s.describe() for s in slots.output_prefix] == ["node 4 SaveVideo.filename_prefix"]


def test_fill_puts_names_prefix_and_typed_settings(dub_workflow: dict[str, Any]) -> None:
    filled = fill(dub_workflow, settings={"seed": 42, "steps": 8.0, "audio_cfg": 5, "codec": "h264"})
    assert filled["1"]["inputs"]["file"] == "up_a.mp4"
    assert filled["2"]["inputs"]["audio"] == "up_a.wav"
    assert filled["4"]["inputs"]["filename_prefix"] == "dubs/one"
    inputs = filled["3"]["inputs"]
    assert inputs["seed"] == 42 and inputs["steps"] == 8 and isinstance(inputs["steps"], int)
    assert inputs["audio_cfg"] == 5.0 and isinstance(inputs["audio_cfg"], float)
    assert inputs["video"] == ["1", 0]  # links untouched
    assert filled["4"]["inputs"]["codec"] == "h264"
    assert dub_workflow["1"]["inputs"]["file"] == "example.mp4"  # the original is not modified


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"settings": {"stepz": 3}}, "setting 'stepz' matches no input"),
        ({"settings": {"steps": 2.5}}, "expects a whole number"),
        ({"settings": {"audio_cfg": "high"}}, "expects a number"),
        ({"settings": {"file": "other.mp4"}}, "would replace a media input"),
        ({"settings": {"filename_prefix": "x"}}, "`output` column"),
        ({"audio_names": ["a.wav", "b.wav"]}, "1 audio input(s)"),
        ({"source_kind": "image"}, "needs a video"),
    ],
)
def test_jobs_that_do_not_fit_are_refused_with_the_reason(
    dub_workflow: dict[str, Any], overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(WorkflowError) as caught:
        fill(dub_workflow, **overrides)
    assert message in str(caught.value)


def test_missing_output_node_and_ui_format_are_refused(dub_workflow: dict[str, Any], tmp_path: Path) -> None:
    del dub_workflow["4"]
    with pytest.raises(WorkflowError, match="filename_prefix"):
        fill(dub_workflow)
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    with pytest.raises(WorkflowError, match="UI-format"):
        load_api_workflow(ui)
    with pytest.raises(WorkflowError, match="not found"):
        load_api_workflow(tmp_path / "absent.api.json")
