"""Wrapping a method of one finished model instance for the length of a ``with`` block.

Run-time transforms (the step cache, sequence parallel) change what ``WanDiT.run_blocks`` does without
branching inside ``dit.py``: each sets an instance attribute that calls the previous ``run_blocks`` (the class
method, or an outer transform's wrapper), and puts the previous one back when its block ends, so transforms
nest in ``with`` order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Wrapper = Callable[[Callable[..., Any]], Callable[..., Any]]  # previous method -> replacement


@contextmanager
def wrapped_method(obj: Any, name: str, wrap: Wrapper) -> Iterator[None]:
    """``obj.name`` replaced by ``wrap(previous obj.name)`` until the block ends."""
    previous = getattr(obj, name)
    had_own = name in vars(obj)
    own = vars(obj).get(name)
    setattr(obj, name, wrap(previous))
    try:
        yield
    finally:
        if had_own:
            setattr(obj, name, own)
        else:
            delattr(obj, name)
