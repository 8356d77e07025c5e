"""The host contract every node class must honour, as a list of problems (empty = fine)."""

from __future__ import annotations

import inspect
from typing import Any

ID_PREFIX = "TalkGen"
NUMBER_TYPES = ("INT", "FLOAT")


def _input_problems(section: str, name: str, spec: Any) -> list[str]:
    where = f"input {section}.{name}"
    if not isinstance(spec, tuple) or not 1 <= len(spec) <= 2:
        return [f"{where}: spec must be a (type,) or (type, options) tuple, got {spec!r}"]
    kind = spec[0]
    options = spec[1] if len(spec) == 2 else {}
    problems = []
    if not isinstance(options, dict):
        return [f"{where}: options must be a dict"]
    if section != "hidden" and not options.get("tooltip"):
        problems.append(f"{where}: no tooltip")
    if isinstance(kind, (list, tuple)):  # COMBO
        if not kind:
            problems.append(f"{where}: empty combo")
        elif "default" in options and options["default"] not in kind:
            problems.append(f"{where}: default {options['default']!r} not among the choices")
    elif not isinstance(kind, str) or not kind:
        problems.append(f"{where}: type must be a non-empty string or a list of choices")
    elif kind in NUMBER_TYPES:
        if "default" not in options:
            problems.append(f"{where}: number input without a default")
        else:
            lo, hi, default = options.get("min"), options.get("max"), options["default"]
            if lo is not None and default < lo or hi is not None and default > hi:
                problems.append(f"{where}: default {default} outside [{lo}, {hi}]")
            if kind == "INT" and not isinstance(default, int):
                problems.append(f"{where}: INT default {default!r} is not an int")
    elif kind == "BOOLEAN" and not isinstance(options.get("default"), bool):
        problems.append(f"{where}: BOOLEAN input needs a bool default")
    return problems


def contract_problems(node_id: str, cls: type, display_names: dict[str, str]) -> list[str]:
    problems: list[str] = []
    if not node_id.startswith(ID_PREFIX):
        problems.append(f"id {node_id!r} does not start with {ID_PREFIX!r}")
    if not display_names.get(node_id):
        problems.append("no display name")
    if not str(getattr(cls, "CATEGORY", "")).startswith(ID_PREFIX):
        problems.append("CATEGORY must start with 'TalkGen'")
    if not getattr(cls, "DESCRIPTION", ""):
        problems.append("no DESCRIPTION")
    try:
        inputs = cls.INPUT_TYPES()
    except Exception as exc:
        return problems + [f"INPUT_TYPES() raised {exc!r}"]
    if not isinstance(inputs, dict) or "required" not in inputs:
        return problems + ["INPUT_TYPES() must return a dict with a 'required' section"]
    unknown_sections = set(inputs) - {"required", "optional", "hidden"}
    if unknown_sections:
        problems.append(f"unknown INPUT_TYPES sections {sorted(unknown_sections)}")
    declared: dict[str, str] = {}
    for section in ("required", "optional", "hidden"):
        for name, spec in inputs.get(section, {}).items():
            if section == "hidden":
                spec = spec if isinstance(spec, tuple) else (spec,)
            problems += _input_problems(section, name, spec)
            declared[name] = section
    returns = getattr(cls, "RETURN_TYPES", None)
    if not isinstance(returns, tuple) or not all(isinstance(r, str) for r in returns):
        problems.append("RETURN_TYPES must be a tuple of type names")
        returns = ()
    for attr in ("RETURN_NAMES", "OUTPUT_TOOLTIPS"):
        value = getattr(cls, attr, None)
        if value is None or len(value) != len(returns):
            problems.append(f"{attr} must have one entry per RETURN_TYPES entry")
    if not returns and not getattr(cls, "OUTPUT_NODE", False):
        problems.append("a node without outputs must be an OUTPUT_NODE")
    function = getattr(cls, str(getattr(cls, "FUNCTION", "")), None)
    if not callable(function):
        return problems + [f"FUNCTION {getattr(cls, 'FUNCTION', None)!r} is not a method"]
    params = dict(inspect.signature(function).parameters)
    params.pop("self", None)
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}
    for name, section in declared.items():
        if name not in named and not takes_kwargs:
            problems.append(f"declared input {name!r} is not a parameter of {cls.FUNCTION}()")
        elif name in named and section != "required" and named[name].default is inspect.Parameter.empty:
            problems.append(f"{section} input {name!r} needs a default in {cls.FUNCTION}()")
    for name, param in named.items():
        if name not in declared:
            problems.append(f"parameter {name!r} of {cls.FUNCTION}() is not a declared input")
        elif declared[name] == "required" and param.default is not inspect.Parameter.empty:
            problems.append(f"required input {name!r} should not have a default in {cls.FUNCTION}()")
    return problems
