"""Where the step cache's MagCache calibrations are kept, and which model and schedule one belongs to.

A calibration (:mod:`talkgen_core.models.step_cache_calibration`) holds, per guidance pass, the mean magnitude
ratio of consecutive residuals at each evaluation time of one schedule. It holds only for the weights it was
measured on and for that schedule (step count and shift): a stored calibration names its weights by a
fingerprint of the first block's modulation table (:func:`weights_fingerprint`) and lists its schedule's
evaluation times; a model or schedule that matches none (real checkpoints, random or fine-tuned weights,
another step count or shift) gets no ratios, and the step cache falls back to TeaCache's raw distance.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from talkgen_core.models.demo import WEIGHTS_DIR

FIT_SUFFIX = ".step-cache.json"  # stored calibrations: talkgen_core/weights/NAME.step-cache.json


def check_ratios(ratios: Mapping[str, Sequence[float]], steps: int) -> dict[str, tuple[float, ...]]:
    """Per pass name, ``steps`` finite positive magnitude ratios (one per evaluation time); bad ones raise."""
    checked = {}
    for name, series in dict(ratios).items():
        values = tuple(series)
        if len(values) != steps or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and
                                           math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"step-cache magnitude ratios of pass {name!r} must be {steps} finite numbers > 0 "
                             f"(one per step of the schedule), got {series!r}")
        checked[str(name)] = tuple(float(v) for v in values)
    return checked


def same_schedule(times: Sequence[float], stored: Sequence[float]) -> bool:
    """Whether two schedules' evaluation times agree (same step count, times within 1e-3)."""
    return len(times) == len(stored) and all(abs(float(a) - float(b)) <= 1e-3 for a, b in zip(times, stored))


def weights_fingerprint(dit: nn.Module) -> Optional[str]:
    """sha256 of the first block's modulation table rounded to bfloat16 (so fp32/bf16 copies of the same
    weights agree); None when the model has no such table or its weights are not materialised."""
    blocks = getattr(dit, "blocks", None)
    table = getattr(blocks[0], "modulation", None) if isinstance(blocks, nn.ModuleList) and len(blocks) else None
    if not isinstance(table, torch.Tensor) or table.is_meta:
        return None
    values = table.detach().to("cpu", torch.bfloat16).float().contiguous().numpy()
    return hashlib.sha256(values.tobytes()).hexdigest()


def stored_fits(folder: Path = WEIGHTS_DIR) -> list[dict]:
    """Every stored fit in ``folder`` (``*.step-cache.json``), each with its file name under ``"file"``."""
    fits = []
    for path in sorted(Path(folder).glob(f"*{FIT_SUFFIX}")):
        fit = json.loads(path.read_text())
        fits.append({**fit, "file": path.name})
    return fits


def stored_ratios(dit: nn.Module, times: Sequence[float],
                  folder: Path = WEIGHTS_DIR) -> tuple[Optional[dict[str, tuple[float, ...]]], Optional[str]]:
    """MagCache's ratios calibrated for ``dit``'s weights on the schedule with evaluation ``times`` and the
    calibration's file name, or (None, None) when no stored calibration matches both."""
    fingerprint = weights_fingerprint(dit)
    if fingerprint is not None:
        for fit in stored_fits(folder):
            schedule = fit.get("schedule", {}).get("times", [])
            if fit.get("weights_fingerprint") == fingerprint and same_schedule(times, schedule):
                return check_ratios(fit["magnitude_ratios"], len(schedule)), fit["file"]
    return None, None
