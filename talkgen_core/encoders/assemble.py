"""Building a transformers module with meta parameters and filling it with a file's tensors (no second copy)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from accelerate import init_empty_weights
from torch import nn

from talkgen_core.encoders.keymaps import map_keys


def assemble(build: Callable[[], nn.Module], tensors: Mapping[str, torch.Tensor], anchor: str, what: str,
             may_miss: Sequence[str] = ()) -> nn.Module:
    """``build()`` with its parameters on the meta device, loaded with ``assign=True`` from ``tensors`` mapped by
    :func:`map_keys`. Buffers (e.g. CLIP's ``position_ids``, which files do not hold) are built for real and
    follow the weights' device. Returns the module in eval mode without gradients.
    """
    with init_empty_weights(include_buffers=False):
        module = build()
    mapping = map_keys(tensors, module.state_dict(), anchor, what, may_miss)
    missing, _ = module.load_state_dict({m: tensors[f] for f, m in mapping.items()}, strict=False, assign=True)
    unfilled = [k for k in missing if k not in may_miss] + [n for n, p in module.named_parameters() if p.is_meta]
    if unfilled:
        raise ValueError(f"{what}: weights {unfilled[:3]} were not filled")
    module.to(next(iter(tensors.values())).device)  # the buffers; the parameters are there already
    return module.eval().requires_grad_(False)
