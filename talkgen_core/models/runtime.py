"""How a finished DiT runs for one generate() call: block swap, step cache, sequence parallel, and the
numbers a run reports (computed DiT forwards, peak memory).

Each transform lives in its own module and is applied here for the length of a ``with`` block, in the
order that composes: block swap (places the weights), sequence parallel (splits ``run_blocks`` over ranks),
then the step cache (decides per call whether ``run_blocks`` runs at all).
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from talkgen_core.models.block_swap import block_swap
from talkgen_core.models.sequence_parallel import sequence_parallel
from talkgen_core.models.step_cache import StepCacheConfig, step_cache

_CLEAR_PEAK_RSS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


@dataclass
class RunStats:
    """Filled while a run is inside :func:`dit_runtime`. ``dit_forwards`` counts the guidance passes whose
    transformer blocks were computed (a batched forward of two passes counts 2; passes the step cache
    skipped count nothing)."""

    dit_forwards: int = 0
    peak_memory_bytes: int = 0
    memory_kind: str = "rss"  # "rss" (process resident set, CPU) or "cuda_max_allocated"
    block_copies: int = 0  # offloaded blocks copied to the device (block swap)
    step_cache_rule: Optional[str] = None  # "magcache (FILE)" or "teacache-raw"; None without a step cache


@contextlib.contextmanager
def counted_forwards(dit: nn.Module, stats: RunStats) -> Iterator[None]:
    """Count computed passes: the batch rows entering the first block."""
    blocks = getattr(dit, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not len(blocks):
        yield
        return

    def count(_module, args) -> None:
        stats.dit_forwards += int(args[0].shape[0])

    handle = blocks[0].register_forward_pre_hook(count)
    try:
        yield
    finally:
        handle.remove()


def _reset_peak_rss() -> bool:
    """Start the kernel's peak-RSS counter (VmHWM) again, so the peak is this run's; False where unsupported."""
    try:
        _CLEAR_PEAK_RSS.write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes(reset_worked: bool) -> int:
    if reset_worked:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@contextlib.contextmanager
def peak_memory(device: torch.device, stats: RunStats) -> Iterator[None]:
    """Peak memory of the block: max allocated on a CUDA device, else the process's peak RSS."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        stats.memory_kind = "cuda_max_allocated"
        try:
            yield
        finally:
            stats.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device))
        return
    reset = _reset_peak_rss()
    stats.memory_kind = "rss"
    try:
        yield
    finally:
        stats.peak_memory_bytes = _peak_rss_bytes(reset)


def runtime_problem(settings: dict) -> Optional[str]:
    """The problems of ``offload_blocks`` / ``step_cache`` / ``sequence_parallel`` settings, checked before any
    model is loaded (the block count itself is checked against the model when it runs); None when usable."""
    problems = []
    for name, minimum in (("offload_blocks", 0), ("sequence_parallel", 1)):
        value = settings.get(name)
        whole = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
        if value is not None and (not whole or value < minimum):
            problems.append(f"{name} must be a whole number >= {minimum}, got {value!r}")
    threshold = settings.get("step_cache")
    if threshold is not None and threshold != 0:
        try:
            StepCacheConfig(threshold)
        except (ValueError, TypeError) as exc:
            problems.append(str(exc))
    return "; ".join(problems) or None


@contextlib.contextmanager
def dit_runtime(dit: nn.Module, device: torch.device, *, offload_blocks: int = 0,
                step_cache_config: Optional[StepCacheConfig] = None,
                split_sequence: bool = False) -> Iterator[RunStats]:
    """Run ``dit`` with the given transforms for the block; yields the run's :class:`RunStats`."""
    stats = RunStats()
    with contextlib.ExitStack() as stack:
        stack.enter_context(peak_memory(device, stats))
        swap = stack.enter_context(block_swap(dit, offload_blocks, device))
        if split_sequence:
            stack.enter_context(sequence_parallel(dit))
        stats.step_cache_rule = stack.enter_context(step_cache(dit, step_cache_config))
        stack.enter_context(counted_forwards(dit, stats))
        try:
            yield stats
        finally:
            stats.block_copies = swap.copies if swap is not None else 0
