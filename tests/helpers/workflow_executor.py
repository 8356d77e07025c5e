"""A small stand-in for ComfyUI's executor: runs an API-format workflow through node classes in dependency order.

API format: ``{"<id>": {"class_type": str, "inputs": {name: literal | [source_id, output_index]}}}``.
Every input name is checked against the class's INPUT_TYPES, so a workflow that names an input or a node
that does not exist fails here rather than in an artist's ComfyUI.
"""

from __future__ import annotations

from typing import Any


class WorkflowError(ValueError):
    pass


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def execution_order(graph: dict[str, dict]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node_id: str, path: tuple[str, ...]) -> None:
        if state.get(node_id) == "done":
            return
        if state.get(node_id) == "visiting":
            raise WorkflowError(f"cycle through nodes {' -> '.join(path + (node_id,))}")
        if node_id not in graph:
            raise WorkflowError(f"node {path[-1]} links to missing node {node_id}")
        state[node_id] = "visiting"
        for value in graph[node_id].get("inputs", {}).values():
            if _is_link(value):
                visit(value[0], path + (node_id,))
        state[node_id] = "done"
        order.append(node_id)

    for node_id in graph:
        visit(node_id, ())
    return order


def _declared_inputs(cls: type) -> tuple[dict, dict]:
    spec = cls.INPUT_TYPES()
    return spec.get("required", {}), spec.get("optional", {})


def run_api_workflow(graph: dict[str, dict], node_classes: dict[str, type]) -> dict[str, tuple]:
    """Run every node; returns each node's outputs tuple by node id."""
    outputs: dict[str, tuple] = {}
    for node_id in execution_order(graph):
        node = graph[node_id]
        class_type = node.get("class_type")
        cls = node_classes.get(class_type)
        if cls is None:
            raise WorkflowError(f"node {node_id}: unknown class_type {class_type!r}")
        required, optional = _declared_inputs(cls)
        kwargs: dict[str, Any] = {}
        for name, value in node.get("inputs", {}).items():
            if name not in required and name not in optional:
                raise WorkflowError(f"node {node_id} ({class_type}): no input named {name!r}")
            if _is_link(value):
                source_outputs = outputs[value[0]]
                if value[1] >= len(source_outputs):
                    raise WorkflowError(f"node {node_id}: link to output {value[1]} of node {value[0]}, which has {len(source_outputs)}")
                value = source_outputs[value[1]]
            kwargs[name] = value
        missing = [name for name in required if name not in kwargs]
        if missing:
            raise WorkflowError(f"node {node_id} ({class_type}): required inputs missing: {missing}")
        result = getattr(cls(), cls.FUNCTION)(**kwargs)
        if isinstance(result, dict):  # output nodes may return {"ui": ..., "result": (...)}
            result = result.get("result", ())
        outputs[node_id] = tuple(result)
    return outputs
