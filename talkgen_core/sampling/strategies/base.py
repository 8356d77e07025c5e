"""What a long-video strategy is: a name, a dataclass of parameters, a chunk plan and a ``run`` over the loop's
services (:class:`~talkgen_core.sampling.streaming.ChunkLoop`), as a k-diffusion sampler is a function over
the model. :class:`ChainedStrategy` is the shape of the strategies that sample one chunk after the other, each
continuing from the chunk before (``infinitetalk``, ``memory-bank``): they only say how a chunk is sampled.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Mapping, Optional

import torch

from talkgen_core.video.writer import FrameSink

from ..chunks import ChunkPlan, ChunkSpec
from ..wrappers import pin_leading_frames


@dataclasses.dataclass(frozen=True)
class NoParams:
    """A strategy without parameters of its own."""


class Strategy(abc.ABC):
    """One long-video strategy. Subclasses set ``name``, ``Params`` (a frozen dataclass whose fields are the
    strategy's options, validated in its ``__post_init__``) and implement :meth:`run`."""

    name: ClassVar[str]
    Params: ClassVar[type] = NoParams
    needs_source_frames: ClassVar[bool] = False  # reads the source video's frames of every chunk (not only SDEdit)

    def __init__(self, params: Optional[Mapping[str, Any]] = None) -> None:
        self.params = self.Params(**dict(params or {}))

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls.Params))

    @classmethod
    def resolve_params(cls, given: Optional[Mapping[str, Any]]) -> dict[str, Any]:
        """All parameters: ``given`` completed with the defaults; unknown names raise an error listing the known."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(cls.param_names()))
        if unknown:
            known = ", ".join(cls.param_names()) or "none"
            raise ValueError(f"the {cls.name} strategy has no parameter(s) {', '.join(unknown)}; its parameters: {known}")
        return dataclasses.asdict(cls.Params(**given))

    @classmethod
    def check_settings(cls, settings) -> None:
        """Refuse sampling settings the strategy cannot serve (``settings``: a StreamSettings)."""

    def plan(self, total_frames: int, chunk_frames: int, context_frames: int) -> ChunkPlan:
        """The chunks (or windows) for a video of ``total_frames`` frames."""
        return ChunkPlan(total_frames, chunk_frames, context_frames)

    def check_plan(self, plan: ChunkPlan) -> None:
        """Refuse a plan that :meth:`plan` would not have made."""

    def model_evaluations(self, plan: ChunkPlan, steps: int, solver: str) -> int:
        """Guided-velocity evaluations of a whole run (each costs the guidance's passes in DiT forwards)."""
        return plan.num_chunks * solver_evaluations(solver, steps)

    @abc.abstractmethod
    def run(self, sampler, loop, sink: FrameSink, state) -> None:
        """Sample, write and save every chunk the run still needs, through ``loop``'s services."""


def solver_evaluations(solver: str, steps: int) -> int:
    """Model evaluations of one solve: Heun evaluates twice per step except on the step that lands on 0."""
    return 2 * steps - 1 if solver == "heun" else steps


class ChainedStrategy(Strategy):
    """Chunks in order, each sampled by :meth:`sample_chunk` from the state the chunk before left.

    A chunk found in the job folder is replayed from its saved latents (decoded, written, and :meth:`finish`
    updates the state exactly as after sampling it), so a resumed run continues bit-identically.
    """

    @abc.abstractmethod
    def sample_chunk(self, sampler, chunk: ChunkSpec, state, on_step=None, check=None) -> torch.Tensor:
        """The chunk's final latents ``[1, z, T, h, w]``."""

    def finish(self, sampler, chunk: ChunkSpec, latents: torch.Tensor, state, sink: FrameSink, check) -> None:
        """Write the chunk and carry what the next chunk needs."""
        sampler.finish_chunk(chunk, latents, state, sink, check)

    def run(self, sampler, loop, sink: FrameSink, state) -> None:
        for chunk in sampler.plan.chunks()[state.next_chunk :]:
            loop.check()
            if loop.is_saved(chunk.index):
                self.finish(sampler, chunk, loop.load(chunk.index), state, sink, loop.check)
                loop.chunk_done(chunk, replayed=True)
                continue
            loop.chunk_started(chunk.index)

            def on_step(info, chunk: ChunkSpec = chunk) -> None:
                loop.step(chunk.index, info.step + 1, last=info.step + 1 == info.num_steps)

            latents = self.sample_chunk(sampler, chunk, state, on_step, loop.check)
            loop.save(chunk.index, latents)
            self.finish(sampler, chunk, latents, state, sink, loop.check)
            loop.chunk_done(chunk)


def solve_pinned(sampler, chunk: ChunkSpec, model_fn, x: torch.Tensor, pinned: torch.Tensor, on_step=None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Solve ``x`` ``[1, z, T, h, w]`` on the sampler's grid with its first frames held at ``pinned``
    ``[1, z, n, h, w]`` (zero velocity there, and written back after every step), checking each step's latents
    for NaN / inf before ``on_step`` sees them."""
    n = pinned.shape[2]

    def after_step(info) -> None:
        info.x[:, :, :n] = pinned
        sampler.check_finite(chunk, info)
        if on_step is not None:
            on_step(info)

    return sampler.solver(pin_leading_frames(model_fn, pinned), x, sampler.timesteps, callback=after_step,
                          generator=generator)
