"""Long-video strategies: how the latents of a video of any length are denoised, one small module each.

=================  ===================================================================================
``infinitetalk``   (default) chunks chained through a clean context tail (InfiniteTalk)
``sliding-window`` overlapping windows fused at every step, streamed as a wavefront (MagicInfinite,
                   SkyReels-Audio); parameter ``overlap_frames``
``memory-bank``    the InfiniteTalk chain plus a noised bank of earlier latents as extra context (LetsTalk);
                   parameters ``bank_size``, ``bank_every``, ``memory_sigma``
=================  ===================================================================================

A strategy is a :class:`~.base.Strategy` subclass: a ``name``, a ``Params`` dataclass (its options, which
the CLI, the node and the queue expose under the same names) and a ``run`` over the chunk loop's services
(:class:`talkgen_core.sampling.streaming.ChunkLoop`: job folder, cancel, progress, writer). To add one, write
a module here and add its class to :data:`STRATEGIES`.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import ChainedStrategy, Strategy
from .infinitetalk import InfiniteTalk
from .memory_bank import MemoryBank
from .refiner_chain import RefinerChain
from .sliding_window import SlidingWindow

DEFAULT_STRATEGY = InfiniteTalk.name
STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (InfiniteTalk, SlidingWindow, MemoryBank)}
# strategies that one model's route chooses for it (not offered for a DiT): the embedded refiner's chain
MODEL_STRATEGIES: dict[str, type[Strategy]] = {RefinerChain.name: RefinerChain}


def get_strategy(name: str) -> type[Strategy]:
    """A strategy class by name; an unknown name raises an error listing the valid ones."""
    try:
        return STRATEGIES[name] if name in STRATEGIES else MODEL_STRATEGIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}") from None


def strategy_params(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of strategy ``name`` among ``values`` (keyword -> value; None = its default). Values for
    other strategies' parameters are left out, so one set of options can serve every strategy."""
    own = get_strategy(name).param_names()
    return {key: value for key, value in values.items() if key in own and value is not None}


def all_param_names() -> tuple[str, ...]:
    """Every strategy's parameter names (the options generate(), the CLI and the node add)."""
    return tuple(dict.fromkeys(n for cls in STRATEGIES.values() for n in cls.param_names()))


__all__ = ["DEFAULT_STRATEGY", "MODEL_STRATEGIES", "STRATEGIES", "ChainedStrategy", "Strategy", "all_param_names", "get_strategy",
           "strategy_params"]
