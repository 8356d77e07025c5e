"""Cancel checks inside a long model pass: before every transformer block, and between the latent frames of a
streamed VAE decode or encode.

Checking only between solver steps is far too coarse at big sizes: one step of a large DiT at 480p, with
two or three CFG passes, takes minutes (a demo DiT forced to 480p went 12 minutes without a check). A check
is any callable that raises to stop (the streaming sampler's raises ``Cancelled``).

The block checks are forward pre-hooks put on a finished model for the length of a run, as host operations
transform a model instead of branching inside ``dit.py``; a model without ``blocks`` gets none. A pre-hook
on block 0 also runs between the CFG passes, which are separate forwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Optional, TypeVar

from torch import nn

T = TypeVar("T")
Check = Callable[[], None]
BlockHook = Callable[[int, int], None]  # (block index, number of blocks), before the block runs


@contextmanager
def before_each_block(model: nn.Module, hook: BlockHook) -> Iterator[None]:
    """Call ``hook(index, num_blocks)`` before every block of ``model.blocks`` runs, until the ``with`` ends."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        yield
        return
    count = len(blocks)
    handles = [
        block.register_forward_pre_hook(lambda _module, _args, index=index: hook(index, count))
        for index, block in enumerate(blocks)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def checked_between(pieces: Iterable[T], check: Optional[Check]) -> Iterator[T]:
    """``pieces`` with ``check()`` run before each one after the first is handed out.

    Wrap the *inputs* of a streamed VAE pass (its latent frames, or its groups of pixel frames): the stream
    asks for its next input only once the previous one is processed, so the checks fall between frames,
    and none runs after the last one.
    """
    for index, piece in enumerate(pieces):
        if index and check is not None:
            check()
        yield piece


class StepWatch:
    """What runs before every block while a step is being sampled: the cancel check, and a "still alive"
    report of the step's estimated progress at most every ``interval_s`` seconds.

    A step's block count (passes x blocks, more for two-evaluation solvers) is learnt from the step before;
    the first step assumes one pass.
    """

    def __init__(self, check: Optional[Check], report: Optional[Callable[[float], None]], interval_s: float) -> None:
        self.check, self.report, self.interval_s = check, report, interval_s
        self.blocks_started = 0
        self.blocks_per_step: Optional[int] = None
        self._last_report = time.perf_counter()

    def before_block(self, index: int, num_blocks: int) -> None:
        if self.check is not None:
            self.check()
        self.blocks_started += 1
        now = time.perf_counter()
        if self.report is None or now - self._last_report < self.interval_s:
            return
        self._last_report = now
        expected = self.blocks_per_step or num_blocks
        self.report(min((self.blocks_started - 1) / expected, 0.99))

    def step_done(self) -> None:
        self.blocks_per_step = self.blocks_started or self.blocks_per_step
        self.blocks_started = 0
        self._last_report = time.perf_counter()
