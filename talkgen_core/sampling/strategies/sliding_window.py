"""``sliding-window``: overlapping windows denoised together, their overlaps fused at every solver step
(MagicInfinite, SkyReels-Audio), streamed as a wavefront.

The video is one latent stream (latent 0 = frame 0, latent ``g`` = frames ``4 g - 3 .. 4 g``). Windows of the
chunk length start every ``chunk_frames - overlap_frames`` frames (the chunk plan with ``overlap_frames`` as
its context), so neighbours share ``O = 1 + (overlap_frames - 1) / 4`` latents. Every window has its own
reference frame and audio windows by absolute time (like a chunk) and its own noise from ``(seed, window)``
for the latents it brings in. At every step each window is denoised from the fused latents on its frames,
and the windows' stepped latents are blended with :func:`~.wavefront.window_weights` (a linear ramp across
each overlap, summing to one). Window 0 keeps its first latent pinned to the reference's own latent, as
InfiniteTalk's chunk 0 (a one-window video is exactly InfiniteTalk's). A later window shows the model, on its
first latent, the earlier window's clean estimate of it from the same step (the model was trained with a
clean leading latent: given the noisy one, lip sync fell from r 0.71 to 0.44 on the demo's held-out clip), and
takes weight 0 there; nothing is carried clean from a finished chunk and no latent is handed off.

Streaming: the operations run in :func:`~.wavefront.wavefront` order, which gives exactly what
:func:`~.wavefront.lockstep` gives, with only a band of about ``steps`` windows alive. When window ``k`` took
its last step, the latents from its start to the next window's start are final (:func:`~.wavefront.final_latents`):
that is finished chunk ``k``. They leave the band, are saved to the job folder together with the band (the
fused latents from there on and the partial sums of the step in progress: all a resume needs to continue
exactly), and are decoded as the next piece of the video's decode stream and written.

Solvers: ``euler`` and ``euler_ancestral`` (one model evaluation per step; the ancestral noise of operation
``(k, s)`` comes from ``(seed, window, step)``). APG is refused (its momentum would be per window state).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import torch

from ..chunks import VAE_TEMPORAL_STRIDE, ChunkPlan, latent_frames
from ..jobdir import ChunkFileWarning, chunk_seed
from ..wrappers import pin_leading_frames
from .base import Strategy
from .wavefront import final_latents, wavefront, window_weights

SOLVERS = ("euler", "euler_ancestral")  # one model evaluation per step, no history across steps


@dataclass(frozen=True)
class SlidingWindowParams:
    overlap_frames: int = 9  # video frames neighbouring windows share, 4n+1, at most about half the window

    def __post_init__(self) -> None:
        value = self.overlap_frames
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (value - 1) % VAE_TEMPORAL_STRIDE:
            raise ValueError(f"overlap_frames must be 4n+1 (e.g. 9, 5, 13), got {value!r}")


@dataclass
class _Window:
    """An alive window: its chunk, what the model is conditioned on, where it lies, its fusion weights."""

    chunk: object  # ChunkSpec
    guided: object  # guided velocity model_fn(x, t)
    start: int  # first latent in the stream
    weights: torch.Tensor  # [1, 1, W, 1, 1]
    pinned: Optional[torch.Tensor] = None  # window 0: the reference's latent [1, z, 1, h, w]


class Band:
    """The live latents ``[lo, lo + n)`` of the stream, each ``[1, z, n, h, w]``: the fused latents at their
    current level (``current``), the partial sums of the windows' stepped latents for the next level
    (``partial``), and on each window's first latent the clean estimate the window before made (``estimate``)."""

    NAMES = ("current", "partial", "estimate")

    def __init__(self, lo: int) -> None:
        self.lo = lo
        self.current: Optional[torch.Tensor] = None
        self.partial: Optional[torch.Tensor] = None
        self.estimate: Optional[torch.Tensor] = None

    @property
    def hi(self) -> int:
        return self.lo + (0 if self.current is None else self.current.shape[2])

    def extend(self, latents: torch.Tensor) -> None:
        zeros = torch.zeros_like(latents)
        if self.current is None:
            self.current, self.partial, self.estimate = latents, zeros, zeros.clone()
        else:
            self.current = torch.cat([self.current, latents], dim=2)
            self.partial = torch.cat([self.partial, zeros], dim=2)
            self.estimate = torch.cat([self.estimate, zeros], dim=2)

    def take(self, hi: int) -> torch.Tensor:
        """Remove and return the latents ``[lo, hi)`` (final ones)."""
        cut = hi - self.lo
        done = self.current[:, :, :cut].clone()
        for name in self.NAMES:
            setattr(self, name, getattr(self, name)[:, :, cut:].clone())
        self.lo = hi
        return done

    def carry(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.NAMES}

    def restore(self, carry: dict[str, torch.Tensor], device: torch.device) -> None:
        for name in self.NAMES:
            setattr(self, name, carry[name].to(device))


class SlidingWindow(Strategy):
    name = "sliding-window"
    Params = SlidingWindowParams

    @classmethod
    def check_settings(cls, settings) -> None:
        if settings.solver not in SOLVERS:
            raise ValueError(f"the sliding-window strategy steps every window once per solver step; use one of the "
                             f"solvers {', '.join(SOLVERS)}, not {settings.solver!r}")
        if settings.guidance.apg is not None:
            raise ValueError("the sliding-window strategy does not support APG (its momentum would be per-window "
                             "state); turn apg off or use the infinitetalk strategy")
        if settings.context_mode != "latent":
            raise ValueError("context_mode='pixel' belongs to the chained strategies; sliding-window carries no "
                             "context (leave context_mode at 'latent')")
        if settings.end_keyframe:
            raise ValueError("end_keyframe is the infinitetalk strategy's rigid baseline; sliding-window has none")

    def plan(self, total_frames: int, chunk_frames: int, context_frames: int) -> ChunkPlan:
        return ChunkPlan(total_frames, chunk_frames, self.params.overlap_frames)

    def check_plan(self, plan: ChunkPlan) -> None:
        if plan.context_frames != self.params.overlap_frames:
            raise ValueError(f"the sliding-window plan needs context_frames = overlap_frames "
                             f"({self.params.overlap_frames}), got {plan.context_frames}; build it with "
                             "SlidingWindow.plan(...)")
        overlap, window = latent_frames(plan.context_frames), plan.latent_frames_per_chunk
        if 2 * overlap > window:
            raise ValueError(f"overlap_frames={plan.context_frames} is more than half the {plan.chunk_frames}-frame "
                             f"window; at most {4 * (window // 2 - 1) + 1} (only neighbouring windows may overlap)")

    # ------------------------------------------------------------------ the windows
    def _window(self, sampler, index: int, band: Band, state, check) -> _Window:
        """Window ``index`` made alive; the latents it brings in past the band's end join the band at their
        starting level: noise from ``(seed, window)``, or the noised source latents for SDEdit."""
        plan = sampler.plan
        chunk = plan.chunk(index)
        reference = sampler.references.reference_for(chunk, sampler.fps)
        condition = sampler.condition_for(chunk, reference, state, check)
        guided = sampler.guided(sampler.chunk_conditioning(chunk, reference, condition))
        window, overlap = plan.latent_frames_per_chunk, latent_frames(plan.context_frames)
        weights = window_weights(index, plan.num_chunks, window, overlap).view(1, 1, -1, 1, 1).to(sampler.device)
        start = index * (window - overlap)
        pinned = condition[:, 4:, :1] if index == 0 else None  # the reference's own latent, as InfiniteTalk's chunk 0
        if start + window > band.hi:
            x, _ = sampler.initial_latents(chunk, condition)
            if pinned is not None:
                x[:, :, :1] = pinned
            band.extend(x[:, :, band.hi - start :])
        return _Window(chunk, guided, start, weights, pinned)

    def _operation(self, sampler, window: _Window, step: int, band: Band) -> None:
        """Solver step ``step`` of one window from the fused latents; its weighted result joins the partial sums,
        the latents no later window touches move to the next level, and its clean estimate of the next
        window's first latent is kept for that window."""
        plan, times = sampler.plan, sampler.timesteps
        lo, hi = window.start - band.lo, window.start - band.lo + plan.latent_frames_per_chunk
        stride = plan.latent_frames_per_chunk - latent_frames(plan.context_frames)
        x = band.current[:, :, lo:hi].clone()
        lead = window.pinned if window.pinned is not None else band.estimate[:, :, lo : lo + 1]
        generator = torch.Generator(device="cpu").manual_seed(
            chunk_seed(chunk_seed(sampler.settings.seed, window.chunk.index), step + 1))
        estimates: list[torch.Tensor] = []
        x = sampler.solver(pin_leading_frames(window.guided, lead), x, times[step : step + 2],
                           callback=lambda info: estimates.append(info.denoised), generator=generator)
        if window.chunk.index < plan.num_chunks - 1:
            band.estimate[:, :, lo + stride : lo + stride + 1] = estimates[0][:, :, stride : stride + 1]
        if window.pinned is not None:
            x[:, :, :1] = window.pinned
        if not torch.isfinite(x).all():
            from ..streaming import NonFiniteLatents

            raise NonFiniteLatents(window.chunk.index, plan.num_chunks, step + 1, len(times) - 1)
        band.partial[:, :, lo:hi] += window.weights * x
        done_hi = hi if window.chunk.index == plan.num_chunks - 1 else lo + stride
        band.current[:, :, lo:done_hi] = band.partial[:, :, lo:done_hi]
        band.partial[:, :, lo:done_hi] = 0

    # ------------------------------------------------------------------ the run
    def _resume_point(self, sampler, loop) -> Optional[dict[str, torch.Tensor]]:
        """The band saved with the last finished window, or None to start over (nothing saved, or unusable)."""
        finished = 0
        while finished < sampler.plan.num_chunks and loop.is_saved(finished):
            finished += 1
        if finished == 0:
            return None
        carry = loop.job.load_carry(finished - 1)
        if carry is None and finished < sampler.plan.num_chunks:
            warnings.warn(f"job folder {loop.job.path}: the band saved with chunk {finished} is missing or damaged; "
                          "the sliding-window run starts over", ChunkFileWarning, stacklevel=3)
            loop.job.discard_from(0)
            return None
        return carry or {}

    def run(self, sampler, loop, sink, state) -> None:
        if state.next_chunk:
            raise ValueError("the sliding-window strategy runs a video from its start (resume it from a job folder)")
        plan, steps = sampler.plan, sampler.settings.steps
        window_len = plan.latent_frames_per_chunk
        stride = window_len - latent_frames(plan.context_frames)
        carry = self._resume_point(sampler, loop)
        replay = 0
        if carry is not None:
            while replay < plan.num_chunks and loop.is_saved(replay):
                loop.check()
                lo, _ = final_latents(replay, plan.num_chunks, stride, window_len)
                sampler.finish_segment(replay, lo, loop.load(replay), state, sink, loop.check)
                loop.chunk_done(plan.chunk(replay), replayed=True)
                replay += 1
        band = Band(replay * stride if replay else 0)
        if carry:
            band.restore(carry, sampler.device)
        alive: dict[int, _Window] = {}
        schedule = wavefront(plan.num_chunks, steps)
        done_ops = 0  # operations done, here or before the resume: progress counts them in order
        if replay:
            for operation in schedule:
                done_ops += 1
                if operation == (replay - 1, steps - 1):
                    break
        loop.steps_total = plan.num_chunks * steps - done_ops
        for k, s in schedule:
            loop.check()
            window = alive.get(k)
            if window is None:
                window = alive[k] = self._window(sampler, k, band, state, loop.check)
            if s == 0:
                loop.chunk_started(k)
            self._operation(sampler, window, s, band)
            done_ops += 1
            loop.step((done_ops - 1) // steps, (done_ops - 1) % steps + 1, last=True)
            if s == steps - 1:
                _, hi = final_latents(k, plan.num_chunks, stride, window_len)
                segment = band.take(hi)
                loop.save(k, segment, band.carry() if k < plan.num_chunks - 1 else None)
                sampler.finish_segment(k, k * stride, segment, state, sink, loop.check)
                loop.chunk_done(plan.chunk(k))
                del alive[k]

    def model_evaluations(self, plan: ChunkPlan, steps: int, solver: str) -> int:
        return plan.num_chunks * steps

