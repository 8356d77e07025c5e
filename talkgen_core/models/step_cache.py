"""Step cache (MagCache, else TeaCache's raw distance): skip the transformer blocks of a DiT forward and reuse
the residual of the last computed one.

Per guidance pass (the conditional and each unconditional pass keep their own cache) and per chunk:

* **MagCache** (Ma et al. 2025), when the model has a calibration for its weights *and* this schedule: the
  calibration holds, per pass and step, the mean magnitude ratio ``gamma_i = mean_tokens ||r_i|| / ||r_{i-1}||``
  of consecutive residuals (``r`` = blocks' output - input) measured in full, uncached sampling
  (:mod:`talkgen_core.models.step_cache_calibration`). While skipping, the pass accumulates the ratio product
  ``P *= gamma_i`` and the error ``E += |1 - P|``; the step is skipped while ``E < threshold`` and at most
  ``max_skips`` (K) steps in a row are skipped, reusing the cached residual scaled by ``P``. Otherwise the blocks
  run and ``P``, ``E`` and the skip count restart.
* **TeaCache, raw distance** (the fallback, e.g. real checkpoints, retrained weights, another step count or
  shift): the indicator is the first block's modulated input ``norm1(h) * (1 + scale1) + shift1``; its
  relative L1 change ``mean |m - m_prev| / mean |m_prev|`` accumulates since the last computed forward, and
  while the sum stays below ``threshold`` the pass reuses its last residual unscaled. No per-model polynomial.
* The first and the last step of every chunk always compute (the first has nothing to reuse; the last
  decides the final latents).
* Passes that share one batched forward are skipped together: the forward is skipped only when every pass
  in it may be, otherwise all of them compute.

Calibrations are stored next to the weights (``talkgen_core/weights/*.step-cache.json``), matched by a
fingerprint of the weights and by the schedule's times (:mod:`talkgen_core.models.step_cache_fit`).
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Protocol

import torch
from torch import nn

from talkgen_core.models.blocks import BlockInputs, modulated_norm
from talkgen_core.models.seams import wrapped_method
from talkgen_core.models.step_cache_fit import check_ratios, stored_ratios

log = logging.getLogger(__name__)

STEP_CACHE_ATTRIBUTE = "step_cache_config"  # where step_cache() leaves the config on the model
DEFAULT_MAX_SKIPS = 2  # MagCache's K: at most this many steps skipped in a row
TEACACHE_RAW = "teacache-raw"  # the fallback rule's name in --report


def pass_name(key: Hashable) -> str:
    """The name a calibration uses for a guidance pass (``Branch.COND`` -> "COND")."""
    return str(getattr(key, "name", key))


@dataclass(frozen=True)
class StepCacheConfig:
    """``threshold`` (> 0) on the accumulated error (MagCache) or distance (TeaCache raw); ``protected_t``: times
    that always compute (the first and last step of the chunk's schedule); ``times``: the schedule's evaluation
    times; ``magnitude_ratios``: per pass name, MagCache's calibrated ratio at each of ``times`` (the first entry
    unused), None = TeaCache's raw distance (:func:`step_cache` fills it from a matching calibration);
    ``max_skips``: MagCache's K; ``rule``: the rule's name for the report."""

    threshold: float
    protected_t: tuple[float, ...] = ()
    times: tuple[float, ...] = ()
    magnitude_ratios: Optional[Mapping[str, tuple[float, ...]]] = None
    max_skips: int = DEFAULT_MAX_SKIPS
    rule: str = TEACACHE_RAW

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or \
                not math.isfinite(self.threshold) or self.threshold <= 0:
            raise ValueError(f"step_cache must be a threshold > 0 (e.g. 0.1; 0 turns it off), got {self.threshold!r}")
        if isinstance(self.max_skips, bool) or not isinstance(self.max_skips, int) or self.max_skips < 1:
            raise ValueError(f"max_skips (MagCache's K) must be a whole number >= 1, got {self.max_skips!r}")
        if self.magnitude_ratios is not None:
            object.__setattr__(self, "magnitude_ratios", check_ratios(self.magnitude_ratios, len(self.times)))

    @classmethod
    def for_schedule(cls, threshold: float, timesteps: torch.Tensor, max_skips: int = DEFAULT_MAX_SKIPS,
                     magnitude_ratios: Optional[Mapping[str, Sequence[float]]] = None) -> "StepCacheConfig":
        """Protect the first step and the last step (the smallest non-zero time) of ``timesteps`` [S + 1]."""
        times = [float(t) for t in timesteps]
        evaluations = tuple(times[:-1]) if len(times) > 1 else tuple(times)
        return cls(float(threshold), (times[0], times[-2] if len(times) > 1 else times[0]), evaluations,
                   magnitude_ratios, max_skips, "magcache" if magnitude_ratios is not None else TEACACHE_RAW)

    def step_index(self, t: float) -> Optional[int]:
        """The index of ``t`` among the schedule's evaluation times, None when it is not one of them."""
        return next((i for i, s in enumerate(self.times) if _same_time(t, s)), None)

    def chunk_cache(self) -> "ChunkStepCache":
        return ChunkStepCache(self)


def _same_time(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


@dataclass
class _PassEntry:
    modulated: Optional[torch.Tensor]  # [1, L, C] float32, the latest modulated input seen (TeaCache only)
    residual: torch.Tensor  # [1, L, C] float32, blocks' output - input of the last computed forward
    accumulated: float = 0.0  # TeaCache: summed distance; MagCache: summed error |1 - ratio product|
    ratio: float = 1.0  # MagCache: product of the calibrated ratios since the computed forward
    skips: int = 0  # steps skipped since the computed forward


def modulated_input(dit: nn.Module, h: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
    """The first block's modulated input: [B, L, C] float32 (``h`` the residual stream before the blocks)."""
    block = dit.blocks[0]
    mod = block.modulation.to(inputs.time_mod.device, torch.float32) + inputs.time_mod  # [B, 6, C]
    return modulated_norm(block.norm1, h, mod[:, 0:1], mod[:, 1:2])


def relative_l1(now: torch.Tensor, before: torch.Tensor) -> float:
    return float((now - before).abs().mean() / before.abs().mean().clamp_min(1e-12))


def magnitude_ratio(now: torch.Tensor, before: torch.Tensor) -> float:
    """MagCache's magnitude ratio of two residuals [1, L, C]: the mean over tokens of ``||now|| / ||before||``."""
    return float((now.norm(dim=-1) / before.norm(dim=-1).clamp_min(1e-12)).mean())


class ChunkCacheFactory(Protocol):
    """What :func:`installed` leaves on a model: makes the per-chunk object whose ``around`` wraps each DiT call
    (a :class:`ChunkStepCache`, or the calibration's recorder)."""

    def chunk_cache(self) -> Any: ...


class RunBlocksHook(abc.ABC):
    """Something that stands in the DiT's ``run_blocks`` for one call (a step cache, a calibration recorder)."""

    @abc.abstractmethod
    def run_blocks(self, run: Callable[[torch.Tensor, BlockInputs], torch.Tensor], dit: nn.Module,
                   passes: Sequence[Hashable], t: float, h: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """The blocks' output for ``h`` ``[B, L, C]``: ``run(h, inputs)``, or what the hook gives instead."""

    @contextmanager
    def around(self, dit: nn.Module, passes: Sequence[Hashable], t: float) -> Iterator[None]:
        """For one DiT call: its ``run_blocks`` goes through this hook, with ``passes`` naming the batch rows."""
        with wrapped_method(dit, "run_blocks",
                            lambda run: lambda h, inputs: self.run_blocks(run, dit, passes, t, h, inputs)):
            yield


@dataclass
class ChunkStepCache(RunBlocksHook):
    """The cache of one chunk (one ``DiTVelocity``): an entry per guidance pass. ``skipped`` counts skipped passes."""

    config: StepCacheConfig
    entries: dict[Hashable, _PassEntry] = field(default_factory=dict)
    last_t: Optional[float] = None
    skipped: int = 0

    @classmethod
    def for_model(cls, dit: nn.Module) -> Optional["ChunkStepCache"]:
        """A fresh per-chunk cache when ``dit`` runs inside :func:`step_cache` (or :func:`installed`), else None."""
        factory = getattr(dit, STEP_CACHE_ATTRIBUTE, None)
        return None if factory is None else factory.chunk_cache()

    def _protected(self, t: float) -> bool:
        return any(_same_time(t, p) for p in self.config.protected_t)

    def _magcache_next(self, entry: Optional[_PassEntry], key: Hashable, t: float,
                       shape: torch.Size) -> Optional[tuple[float, float]]:
        """MagCache: the (ratio product, accumulated error) if this pass skips at ``t``, None when it must compute."""
        ratios = self.config.magnitude_ratios
        index = self.config.step_index(t)
        series = None if ratios is None else ratios.get(pass_name(key))
        if entry is None or entry.residual.shape != shape or series is None or index is None or index == 0 or \
                entry.skips >= self.config.max_skips:
            return None
        ratio = entry.ratio * series[index]
        error = entry.accumulated + abs(1.0 - ratio)
        return (ratio, error) if error < self.config.threshold else None

    def _teacache_next(self, entry: Optional[_PassEntry], modulated: torch.Tensor) -> Optional[float]:
        """TeaCache raw distance: the accumulated distance if this pass skips, None when it must compute."""
        if entry is None or entry.modulated is None or entry.residual.shape != modulated.shape:
            return None
        total = entry.accumulated + relative_l1(modulated, entry.modulated)
        return total if total < self.config.threshold else None

    def run_blocks(self, run: Callable[[torch.Tensor, BlockInputs], torch.Tensor], dit: nn.Module,
                   passes: Sequence[Hashable], t: float, h: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """``run(h, inputs)`` or its cached replacement; ``passes`` names the batch rows of ``h`` [B, L, C]."""
        if len(passes) != h.shape[0]:
            raise ValueError(f"the step cache got {len(passes)} pass names for a batch of {h.shape[0]}")
        if self.last_t is not None and t > self.last_t:  # a new denoising sweep: nothing carries over
            self.entries.clear()
        self.last_t = t
        magcache = self.config.magnitude_ratios is not None
        modulated = None if magcache else modulated_input(dit, h, inputs)  # [B, L, C]
        entries = [self.entries.get(key) for key in passes]
        if magcache:
            nexts: list[Any] = [self._magcache_next(e, key, t, h[:1].shape) for e, key in zip(entries, passes)]
        else:
            assert modulated is not None
            nexts = [self._teacache_next(e, modulated[i:i + 1]) for i, e in enumerate(entries)]
        if not self._protected(t) and all(n is not None for n in nexts):
            reused = []
            for i, (entry, step) in enumerate(zip(entries, nexts)):
                assert entry is not None
                if magcache:
                    entry.ratio, entry.accumulated = step
                    reused.append(entry.residual * entry.ratio)
                else:
                    entry.accumulated, entry.modulated = step, modulated[i:i + 1]
                    reused.append(entry.residual)
                entry.skips += 1
            self.skipped += len(passes)
            return h + torch.cat(reused).to(h)
        out = run(h, inputs)
        for i, key in enumerate(passes):
            self.entries[key] = _PassEntry(None if modulated is None else modulated[i:i + 1],
                                           (out[i:i + 1] - h[i:i + 1]).float())
        return out



@contextmanager
def installed(dit: nn.Module, factory: ChunkCacheFactory) -> Iterator[None]:
    """Every ``DiTVelocity`` made inside the block gets ``factory.chunk_cache()`` around its DiT calls."""
    if not hasattr(dit, "run_blocks") or not isinstance(getattr(dit, "blocks", None), nn.ModuleList):
        raise ValueError("step_cache needs the pack's own DiT (a model with run_blocks); for another model leave it "
                         "at 0 and use that model's own caching")
    setattr(dit, STEP_CACHE_ATTRIBUTE, factory)
    try:
        yield
    finally:
        delattr(dit, STEP_CACHE_ATTRIBUTE)


def resolved(dit: nn.Module, config: StepCacheConfig) -> StepCacheConfig:
    """``config`` with MagCache's ratios from ``dit``'s stored calibration for this schedule when it has none and
    one matches (weights fingerprint and schedule times), else unchanged (TeaCache's raw distance)."""
    if config.magnitude_ratios is not None:
        return config
    ratios, source = stored_ratios(dit, config.times)
    if ratios is None:
        return config
    return replace(config, magnitude_ratios=ratios, rule=f"magcache ({source})")


@contextmanager
def step_cache(dit: nn.Module, config: Optional[StepCacheConfig]) -> Iterator[Optional[str]]:
    """Let every ``DiTVelocity`` made inside the block cache its steps with ``config`` (None: no cache); yields the
    rule used (``"magcache (FILE)"`` or ``"teacache-raw"``; None without a cache) and logs it."""
    if config is None:
        yield None
        return
    config = resolved(dit, config)
    if config.magnitude_ratios is None:
        log.warning("step cache: no MagCache calibration matches these weights and this %d-step schedule; using "
                    "TeaCache's raw input distance (threshold %g)", len(config.times), config.threshold)
    else:
        log.info("step cache: %s, threshold %g, at most %d steps skipped in a row", config.rule, config.threshold,
                 config.max_skips)
    with installed(dit, config):
        yield config.rule


@contextmanager
def optional_around(cache: Optional[ChunkStepCache], dit: nn.Module, passes: Sequence[Hashable],
                    t: float) -> Iterator[None]:
    """:meth:`ChunkStepCache.around` when there is a cache, else nothing."""
    if cache is None:
        yield
        return
    with cache.around(dit, passes, t):
        yield
