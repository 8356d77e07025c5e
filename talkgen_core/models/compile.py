"""``torch.compile`` per DiT block, as a transform of a finished model (``compile_blocks`` / ``uncompile_blocks``).

What is compiled is each block's ``forward`` (its maths), not the module call: forward pre-hooks, such as the
per-block cancel checks of ``sampling/interrupt.py`` and block swap's weight copies, keep running eagerly around
it, so a raising hook is never traced and costs no graph break. All blocks share one code object and their
weights are graph inputs (Dynamo's default inlining of ``nn.Module`` s), so one compilation serves every block;
a new latent grid compiles once more (``dynamic=None``: from the second shape on, sizes become symbolic).

Compiled output matches eager within float rounding (inductor fuses the norms, modulation and casts, and may
reorder their float32 sums); ``tests/models/test_compile.py`` bounds it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _blocks(model: nn.Module) -> nn.ModuleList:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError(f"compile needs a model with transformer blocks (a ModuleList 'blocks'); "
                         f"{type(model).__name__} has none")
    return blocks


def compile_blocks(model: nn.Module, **options: Any) -> nn.Module:
    """Compile the ``forward`` of every block of ``model.blocks`` in place; returns ``model``.

    ``options`` go to ``torch.compile`` (e.g. ``mode="max-autotune-no-cudagraphs"``). Idempotent: blocks
    already compiled are left as they are.
    """
    for block in _blocks(model):
        if "forward" not in vars(block):  # the class's forward, not yet replaced on this instance
            block.forward = torch.compile(block.forward, **options)
    return model


def uncompile_blocks(model: nn.Module) -> nn.Module:
    """Undo ``compile_blocks``: every block runs its class's eager ``forward`` again; returns ``model``."""
    for block in _blocks(model):
        vars(block).pop("forward", None)
    return model


def is_compiled(model: nn.Module) -> bool:
    """Whether ``compile_blocks`` is in effect on ``model``."""
    blocks = getattr(model, "blocks", None)
    return isinstance(blocks, nn.ModuleList) and any("forward" in vars(block) for block in blocks)
