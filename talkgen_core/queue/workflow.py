"""Putting one job into an API-format ComfyUI workflow.

An API-format workflow is a flat map ``{"<node id>": {"class_type": ..., "inputs": {name: value}}}``
where a value is a literal or a link ``[source node id, output index]``. Only literal inputs are ever
changed; links are left alone. The rules, also printed by ``queue --help``:

Media slots (every one must be filled by the job, so no example file from the workflow slips through):

- image: ``LoadImage.image``, and an input named ``image`` on any ``TalkGen*`` node.
- video: ``LoadVideo.file``, and an input named ``video`` on any ``TalkGen*`` node.
- audio: ``LoadAudio.audio``, and an input named ``audio`` on any ``TalkGen*`` node. Audio slots are
  filled in ascending node-id order with the job's ``audio``, ``audio2``, ...; the counts must match.

Output: every literal ``filename_prefix`` input (SaveVideo, SaveImage, the TalkGen video writer, ...)
is set to the job's output name; at least one must exist.

Settings: a per-job setting replaces the literal input of the same name on every node that has one,
converted to the type already there (an int slot takes whole numbers, a float slot takes any number, a
bool slot takes true/false, a text slot takes text or numbers). A setting that matches no literal input
is an error, so a misspelt column never goes unnoticed. Settings cannot replace media slots or
``filename_prefix``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkgen_core.queue.manifest import Scalar

ApiWorkflow = dict[str, dict[str, Any]]

# (class_type, input name) -> media kind, for ComfyUI's own loader nodes
NATIVE_MEDIA_INPUTS: dict[tuple[str, str], str] = {
    ("LoadImage", "image"): "image",
    ("LoadVideo", "file"): "video",
    ("LoadAudio", "audio"): "audio",
}
TALKGEN_CLASS_PREFIX = "TalkGen"
TALKGEN_MEDIA_INPUTS = ("image", "video", "audio")  # input names that are media slots on TalkGen nodes
OUTPUT_PREFIX_INPUT = "filename_prefix"


class WorkflowError(ValueError):
    """The workflow file is unusable, or one job does not fit the workflow's slots."""


@dataclass(frozen=True)
class InputSlot:
    node_id: str
    class_type: str
    input_name: str

    def describe(self) -> str:
        return f"node {self.node_id} {self.class_type}.{self.input_name}"


@dataclass(frozen=True)
class WorkflowSlots:
    image: tuple[InputSlot, ...]
    video: tuple[InputSlot, ...]
    audio: tuple[InputSlot, ...]
    output_prefix: tuple[InputSlot, ...]

    def media(self, kind: str) -> tuple[InputSlot, ...]:
        return {"image": self.image, "video": self.video, "audio": self.audio}[kind]


def load_api_workflow(path: str | Path) -> ApiWorkflow:
    """Read and shape-check an API-format workflow (the pack ships them as ``workflows/api/NAME.json``)."""
    path = Path(path)
    if not path.is_file():
        raise WorkflowError(f"workflow not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkflowError(f"workflow {path} is not valid JSON ({exc}); export it with 'Export (API)'") from exc
    return check_api_workflow(data, str(path))


def check_api_workflow(data: Any, name: str = "workflow") -> ApiWorkflow:
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        raise WorkflowError(
            f"{name} is a UI-format workflow; the queue needs the API format: use its twin in the pack's workflows/api/ "
            "or ComfyUI's 'Export (API)'"
        )
    if not isinstance(data, dict) or not data:
        raise WorkflowError(f"{name} must be a JSON object mapping node ids to nodes")
    for node_id, node in data.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowError(f"{name}: node {node_id!r} has no class_type; is this an API-format workflow?")
        if not isinstance(node.get("inputs", {}), dict):
            raise WorkflowError(f"{name}: node {node_id!r} has inputs that are not a JSON object")
    return data


def find_slots(workflow: ApiWorkflow) -> WorkflowSlots:
    """Media and output slots of a workflow, each list in ascending node-id order."""
    found: dict[str, list[InputSlot]] = {"image": [], "video": [], "audio": [], "prefix": []}
    for node_id in sorted(workflow, key=_node_order):
        node = workflow[node_id]
        class_type = node["class_type"]
        for input_name, value in node.get("inputs", {}).items():
            if _is_link(value):
                continue
            kind = _media_kind(class_type, input_name)
            if kind is not None:
                found[kind].append(InputSlot(node_id, class_type, input_name))
            elif input_name == OUTPUT_PREFIX_INPUT:
                found["prefix"].append(InputSlot(node_id, class_type, input_name))
    return WorkflowSlots(
        tuple(found["image"]), tuple(found["video"]), tuple(found["audio"]), tuple(found["prefix"])
    )


def fill_workflow(
    workflow: ApiWorkflow,
    *,
    source_kind: str,
    source_name: str,
    audio_names: Sequence[str],
    output_prefix: str,
    settings: Mapping[str, Scalar],
) -> ApiWorkflow:
    """A copy of ``workflow`` with one job's uploaded file names, output prefix and settings put in.

    Raises :class:`WorkflowError` naming the slot or setting when the job does not fit the workflow.
    """
    slots = find_slots(workflow)
    filled = copy.deepcopy(workflow)
    problems: list[str] = []

    for kind in ("image", "video"):
        kind_slots = slots.media(kind)
        if kind == source_kind:
            if not kind_slots:
                problems.append(
                    f"the job gives {_article(kind)} {kind} but the workflow has no {kind} input ({_slot_hint(kind)})"
                )
            for slot in kind_slots:
                filled[slot.node_id]["inputs"][slot.input_name] = source_name
        elif kind_slots:
            problems.append(
                f"the workflow needs {_article(kind)} {kind} ({_list(kind_slots)}) "
                f"but the job gives {_article(source_kind)} {source_kind}"
            )

    if len(slots.audio) != len(audio_names):
        problems.append(
            f"the workflow has {len(slots.audio)} audio input(s) ({_list(slots.audio) or _slot_hint('audio')}) "
            f"but the job gives {len(audio_names)} audio file(s); use the columns audio, audio2, ... to match"
        )
    else:
        for slot, name in zip(slots.audio, audio_names):
            filled[slot.node_id]["inputs"][slot.input_name] = name

    if not slots.output_prefix:
        problems.append("the workflow has no output node with a filename_prefix input (SaveVideo, SaveImage, ...)")
    for slot in slots.output_prefix:
        filled[slot.node_id]["inputs"][slot.input_name] = output_prefix

    media_slots = {(s.node_id, s.input_name) for s in slots.image + slots.video + slots.audio}
    for setting, value in settings.items():
        problems += _apply_setting(filled, setting, value, media_slots)

    if problems:
        raise WorkflowError("; ".join(problems))
    return filled


def _apply_setting(
    workflow: ApiWorkflow, setting: str, value: Scalar, media_slots: set[tuple[str, str]]
) -> list[str]:
    if setting == OUTPUT_PREFIX_INPUT:
        return ["the setting filename_prefix cannot be used; the `output` column names the output"]
    targets = [
        node_id
        for node_id, node in workflow.items()
        if setting in node.get("inputs", {}) and not _is_link(node["inputs"][setting])
    ]
    if not targets:
        names = sorted(
            {name for node in workflow.values() for name, v in node.get("inputs", {}).items() if not _is_link(v)}
        )
        return [f"setting {setting!r} matches no input of the workflow (inputs that can be set: {', '.join(names)})"]
    problems: list[str] = []
    for node_id in sorted(targets, key=_node_order):
        if (node_id, setting) in media_slots:
            problems.append(
                f"setting {setting!r} would replace a media input of node {node_id}; "
                "use the manifest's source and audio columns"
            )
            continue
        inputs = workflow[node_id]["inputs"]
        try:
            inputs[setting] = _convert_like(value, inputs[setting])
        except ValueError as exc:
            problems.append(f"setting {setting!r} for node {node_id} ({workflow[node_id]['class_type']}): {exc}")
    return problems


def _convert_like(value: Scalar, current: Any) -> Any:
    """Convert a manifest value to the type of the literal it replaces."""
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        raise ValueError(f"expects true or false, got {value!r}")
    if isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"expects a whole number, got {value!r}")
    if isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"expects a number, got {value!r}")
    if isinstance(current, str):
        if isinstance(value, bool):
            raise ValueError(f"expects text, got {value!r}")
        return value if isinstance(value, str) else str(value)
    return value


def _media_kind(class_type: str, input_name: str) -> str | None:
    native = NATIVE_MEDIA_INPUTS.get((class_type, input_name))
    if native is not None:
        return native
    if class_type.startswith(TALKGEN_CLASS_PREFIX) and input_name in TALKGEN_MEDIA_INPUTS:
        return input_name
    return None


def _is_link(value: Any) -> bool:
    """``[source node id, output index]``; ids are strings in exported workflows, ints in some hand-written ones."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
        and not isinstance(value[0], bool)
    )


def _node_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _slot_hint(kind: str) -> str:
    native = next(f"{c}.{i}" for (c, i), k in NATIVE_MEDIA_INPUTS.items() if k == kind)
    return f"{native} or a TalkGen node input named `{kind}`"


def _list(slots: Sequence[InputSlot]) -> str:
    return ", ".join(slot.describe() for slot in slots)


def _article(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"
