"""The chunk loop's services, written once for every long-video strategy.

A *strategy* (:mod:`talkgen_core.sampling.strategies`: ``infinitetalk``, the default, ``sliding-window``,
``memory-bank``) decides how the latents of a video are denoised; this module gives each of them the same
services: the job folder and bit-exact resume, progress with an ETA, cancel (down to single DiT blocks),
the streaming writer with the exact trim, references by time (image, keyframes, dubbing), SDEdit, colour
correction and any number of speakers.

The InfiniteTalk chain (``infinitetalk``, per chunk of ``T`` latent frames, ``h x w`` latent size, ``z``
latent channels):

1. Reference frame from the :class:`~.references.ReferenceProvider`, at the chunk's time.
2. Conditioning, built as officially: the VAE latent of a clip made of the reference frame followed by
   grey (zero) frames, after a 4-channel first-frame mask (latent frame 0 all ones, the rest zero):
   ``cond = [mask (4) | latent (z)]``; the DiT sees ``[noisy (z) | cond]`` = 2 z + 4 channels.
3. Context: the first latent frames hold clean conditioning frames, written before every model call and
   after every solver step: chunk 0 the reference's own latent (1 frame); later chunks the previous chunk's
   tail. By default the tail is carried as CLEAN LATENTS (the previous chunk's last
   ``1 + (context_frames - 1) / 4`` latent frames; no decode/re-encode). ``context_mode="pixel"`` is the
   official round trip: the last ``context_frames`` decoded, colour-corrected frames are VAE-encoded.
4. Audio windows for the chunk's frames, by absolute frame index (reflection-padded past the audio end,
   :func:`talkgen_core.audio.frame_windows`).
5. Noise from ``(seed, chunk index)`` only, so a resumed run draws exactly the same noise.
6. Solve with guidance, save the latents to the job directory, decode, colour-correct, and hand the frames
   to the sink: all frames of the first chunk, later chunks without their context frames, the last chunk
   cut at the audio end. In latent mode the decoder's causal history carries over too, so the video is
   decoded as one stream (``StreamingSampler._decoded_chunk``). Nothing but the small :class:`StreamState`
   (a few latent or pixel frames, the decoder's history) survives a chunk.

Strategies that denoise one video-wide latent stream (``sliding-window``) hand finished latent segments to
:meth:`StreamingSampler.finish_segment` instead, which continues the same decode stream.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from talkgen_core.video.writer import FrameSink

from talkgen_core.audio.windows import frame_windows

from .chunks import ChunkPlan, ChunkSpec, latent_frames
from .colour import ColourTarget, match_colours
from .guidance import GuidanceConfig, GuidedVelocity
from .interrupt import Check, StepWatch, before_each_block, checked_between
from .jobdir import JobDir, chunk_seed
from .references import ReferenceProvider
from .schedules import NUM_TRAIN_TIMESTEPS, SHIFT_480P, explicit_timesteps, flow_timesteps
from .solvers import SOLVERS, StepInfo, get_solver
from .wrappers import ChunkConditioning, DiTVelocity

ContextMode = Literal["latent", "pixel"]
MASK_CHANNELS = 4
BLOCK_REPORT_S = 2.0  # a step still running reports its progress this often (a cheap, throttled "block" event)


class NonFiniteLatents(ValueError):
    """A chunk's latents became NaN or infinite while sampling: raised at that step, before anything of the
    chunk is saved or decoded (a NaN latent decodes to a black video that would otherwise look finished)."""

    def __init__(self, chunk: int, num_chunks: int, step: int, num_steps: int) -> None:
        super().__init__(
            f"chunk {chunk + 1}/{num_chunks}: the latents became NaN or infinite at solver step {step}/{num_steps}, "
            "so nothing of this chunk was written; earlier chunks are kept (in the job folder when one is used). "
            "Likely causes: a non-finite or extreme guidance scale or shift, or broken model weights (run "
            "check-model on the files)"
        )
        self.chunk = chunk


class Cancelled(RuntimeError):
    """Raised when the cancel check says so (checked down to single DiT blocks); finished chunks stay saved."""

    def __init__(self, finished_chunks: int, num_chunks: int, job_path: Optional[str]) -> None:
        where = (f"kept in the job folder {job_path}; run it again with the same inputs and settings to resume "
                 f"from chunk {finished_chunks + 1}") if job_path else "not kept (no job folder was given)"
        super().__init__(f"cancelled after {finished_chunks} of {num_chunks} chunks; the {finished_chunks} finished "
                         f"chunk(s) are {where}")
        self.finished_chunks = finished_chunks
        self.num_chunks = num_chunks
        self.job_path = job_path


@dataclass(frozen=True)
class StreamSettings:
    """Sampling settings that determine the output (all of them go into the job manifest)."""

    steps: int = 40
    shift: float = SHIFT_480P
    solver: str = "euler"
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    seed: int = 42
    context_mode: ContextMode = "latent"
    colour_strength: float = 1.0  # official default; 0 disables
    sdedit_strength: float = 1.0  # V2V: start noise level over the source latents; 1 = start from pure noise
    # pin each chunk's last latent frame to its reference too: rigid first+last-frame conditioning, the
    # keyframe-interpolation baseline InfiniteTalk improves on (kept for the quality benchmark's comparison)
    end_keyframe: bool = False
    # the long-video strategy (talkgen_core.sampling.strategies) and its own parameters; the parameters are
    # completed with the strategy's defaults here, so the job key always holds all of them
    strategy: str = "infinitetalk"
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    # a published grid as model times before the shift, one per step (SoulX-FlashTalk: 1000, 750, 500, 250);
    # None = the official linspace grid of ``steps``
    timesteps: Optional[tuple[float, ...]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if self.timesteps is not None:
            object.__setattr__(self, "timesteps", tuple(float(t) for t in self.timesteps))
            if len(self.timesteps) != self.steps:
                raise ValueError(f"timesteps lists {len(self.timesteps)} times for {self.steps} steps; give one "
                                 "time per step")
            if self.sdedit_strength < 1.0:
                raise ValueError("sdedit_strength < 1 needs the official grid (it starts part-way down it); "
                                 "leave timesteps unset or set sdedit_strength=1")
            explicit_timesteps(self.timesteps, self.shift)  # refuses an unusable grid now, not at the first chunk
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose one of: {', '.join(SOLVERS)}")
        if self.context_mode not in ("latent", "pixel"):
            raise ValueError(f"context_mode must be 'latent' or 'pixel', got {self.context_mode!r}")
        if not 0.0 <= self.colour_strength <= 1.0:
            raise ValueError(f"colour_strength must be in [0, 1], got {self.colour_strength}")
        if not 0.0 < self.sdedit_strength <= 1.0:
            raise ValueError(f"sdedit_strength must be in (0, 1], got {self.sdedit_strength}")
        from .strategies import get_strategy

        strategy = get_strategy(self.strategy)
        object.__setattr__(self, "strategy_params", strategy.resolve_params(self.strategy_params))
        strategy.check_settings(self)

    def to_dict(self) -> dict:
        """The settings as JSON-able data (job manifests and keys). The default strategy with its (parameterless)
        defaults is left out, so job folders made before strategies existed keep their keys and still resume."""
        from .strategies import DEFAULT_STRATEGY

        data = dataclasses.asdict(self)
        data["strategy_params"] = dict(self.strategy_params)
        if self.strategy == DEFAULT_STRATEGY and not self.strategy_params:
            del data["strategy"], data["strategy_params"]
        if self.timesteps is None:  # likewise for job folders made before explicit grids existed
            del data["timesteps"]
        else:
            data["timesteps"] = list(self.timesteps)
        return data

    def time_grid(self) -> torch.Tensor:
        """The solver's grid: the explicit one warped by the shift, else the official one (SDEdit start)."""
        if self.timesteps is not None:
            return explicit_timesteps(self.timesteps, self.shift)
        return flow_timesteps(self.steps, self.shift, start=self.sdedit_strength)


@dataclass
class StreamConditioning:
    """Conditioning shared by every chunk."""

    audio_features: Sequence[torch.Tensor]  # per speaker [N, L, D], one row per output video frame
    context: torch.Tensor  # [1, L_txt, text_dim] prompt states
    negative_context: Optional[torch.Tensor] = None  # [1, L_neg, text_dim]; None = zeros
    clip_encoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None  # [3, H, W] -> [1, N_img, clip_dim]
    speaker_masks: Optional[torch.Tensor] = None  # [P, h', w']
    audio_scale: Union[float, torch.Tensor] = 1.0  # float or [P]

    def __post_init__(self) -> None:
        if not self.audio_features:
            raise ValueError("audio_features needs at least one speaker's features [N, L, D]")
        shapes = {tuple(f.shape[1:]) for f in self.audio_features}
        if len(shapes) != 1 or any(f.ndim != 3 for f in self.audio_features):
            raise ValueError(f"every speaker's features must be [N, L, D] with the same L, D; got {shapes}")


@dataclass
class StreamState:
    """What carries from one chunk to the next (small: a few latent or pixel frames, the decoder's history)."""

    next_chunk: int = 0
    context_latents: Optional[torch.Tensor] = None  # [1, z, k, h, w] previous chunk's clean tail (latent mode)
    tail_pixels: Optional[torch.Tensor] = None  # [1, 3, context_frames, H, W] decoded tail (pixel mode)
    frames_written: int = 0
    cached_reference: Optional[torch.Tensor] = None  # [3, H, W] reference the cached condition was built from
    cached_condition: Optional[torch.Tensor] = None  # [1, 4 + z, T, h, w]
    last_frame: Optional[torch.Tensor] = None  # [3, H, W] the newest frame written (for previews)
    decode_state: Optional[object] = None  # latent mode: the VAE's decode stream (the decoder's causal history)
    strategy_state: dict = field(default_factory=dict)  # what a strategy itself carries (e.g. a memory bank)


@dataclass(frozen=True)
class StreamProgress:
    """A progress report. Strategies that step several windows at once (sliding-window) count their solver
    steps in the order they run: ``chunk`` and ``step`` of a "step" event are then ``done // steps`` and
    ``done % steps`` of all steps done, so progress only moves forward."""

    kind: Literal["step", "chunk", "block"]  # "block": a long step is still running (see step_fraction)
    chunk: int  # 0-based chunk index
    num_chunks: int
    step: int  # steps done in this chunk
    num_steps: int
    frames_written: int
    total_frames: int
    elapsed_s: float
    eta_s: Optional[float]  # None until a step has been timed
    replayed: bool = False  # the chunk came from the job directory instead of being sampled
    preview: Optional[torch.Tensor] = None  # [3, H, W] in [-1, 1]: the chunk's last frame ("chunk" events)
    step_fraction: float = 0.0  # "block" events: share of the running step done, estimated from block counts


@dataclass
class StreamResult:
    frames: int
    chunks: int
    replayed_chunks: int
    seconds: float
    chunk_seconds: list[float]  # wall time of each chunk sampled in this run


def first_frame_mask(video_frames: int, height: int, width: int, stride: int = 4) -> torch.Tensor:
    """The official 4-channel mask: pixel frame 0 marked, repeated ``stride`` times, regrouped per latent.

    Returns ``[1, 4, 1 + (video_frames - 1) / stride, height, width]``: latent frame 0 is all ones, the rest 0.
    """
    mask = torch.zeros(1, video_frames, height, width)
    mask[:, 0] = 1.0
    mask = torch.cat([mask[:, :1].repeat(1, stride, 1, 1), mask[:, 1:]], dim=1)  # [1, stride + F - 1, h, w]
    return mask.view(1, mask.shape[1] // stride, stride, height, width).transpose(1, 2).contiguous()


def _reference_clip(reference: torch.Tensor, video_frames: int, group: int) -> Iterator[torch.Tensor]:
    """The reference frame then grey (zero) frames, as pieces ``[1, 3, n, H, W]`` (first 1, then ``group``)."""
    yield reference[None, :, None]
    zeros = torch.zeros(1, 3, group, *reference.shape[1:], dtype=reference.dtype, device=reference.device)
    remaining = video_frames - 1
    while remaining > 0:
        n = min(group, remaining)
        yield zeros[:, :, :n]
        remaining -= n


def encode_reference_condition(vae, reference: torch.Tensor, video_frames: int,
                               check: Optional[Check] = None) -> torch.Tensor:
    """``[mask (4) | VAE latent of reference + grey frames (z)]`` for one chunk: ``[1, 4 + z, T, h, w]``.

    ``check`` runs between the latent frames of a streamed encode (a cancel check)."""
    stride = int(getattr(vae, "temporal_stride", 4))
    if hasattr(vae, "encode_stream"):  # bounded memory: never holds the whole pixel clip
        clip = checked_between(_reference_clip(reference, video_frames, stride), check)
        latent = torch.cat(list(vae.encode_stream(clip)), dim=2)
    else:
        latent = vae.encode(torch.cat(list(_reference_clip(reference, video_frames, stride)), dim=2))
    mask = first_frame_mask(video_frames, latent.shape[3], latent.shape[4], stride).to(latent)
    return torch.cat([mask, latent], dim=1)


def decoded_pieces(vae, latents: torch.Tensor, decode_state=None,
                   check: Optional[Check] = None) -> Iterator[torch.Tensor]:
    """Decode a chunk's latents, piece by piece when the VAE streams. Yields ``[1, 3, n, H, W]``.

    ``decode_state`` (from ``vae.new_decode_state()``) continues a decode stream: ``latents`` are taken as
    the latent frames that follow those the state has already decoded. ``check`` runs between the latent
    frames of a streamed decode (a cancel check).
    """
    frames = checked_between(torch.split(latents, 1, dim=2), check)
    if decode_state is not None:
        for piece in frames:
            yield vae.decode_chunk(piece, decode_state)
    elif hasattr(vae, "decode_stream"):
        yield from vae.decode_stream(frames)
    else:
        yield vae.decode(latents)


class ChunkLoop:
    """The services of one run that every strategy uses: job folder, cancel, progress with ETA, timing.

    A strategy calls :meth:`step` after each solver step of a chunk (or window), :meth:`save` once a chunk's
    latents are final, and :meth:`chunk_done` once its frames are written. ``steps_total`` is the number of
    solver steps the run will sample, for the ETA.
    """

    def __init__(self, sampler: "StreamingSampler", job: Optional[JobDir],
                 progress: Optional[Callable[[StreamProgress], None]], cancel: Optional[Callable[[], bool]],
                 state: StreamState, block_report_s: float) -> None:
        self.sampler, self.job, self.progress, self.cancel, self.state = sampler, job, progress, cancel, state
        self.plan, self.steps = sampler.plan, sampler.settings.steps
        self.started = time.perf_counter()
        self.finished = state.next_chunk  # chunks whose latents are safe: saved in the job, or written
        self.replayed = 0
        self.chunk_seconds: list[float] = []
        self.sampled_steps = 0
        self.sampling_time = 0.0
        self.steps_total = sum(1 for i in range(state.next_chunk, self.plan.num_chunks)
                               if not self.is_saved(i)) * self.steps
        self._last_tick = self.started
        self._current = (0, 0)  # (chunk, steps done in it) of the newest step, for "block" reports
        self.watch = StepWatch(self.check, lambda fraction: self._report("block", *self._current, fraction=fraction),
                               block_report_s)

    # ------------------------------------------------------------------ job folder
    def is_saved(self, index: int) -> bool:
        return self.job is not None and self.job.is_finished(index)

    def load(self, index: int) -> torch.Tensor:
        return self.job.load_chunk(index).to(self.sampler.device)

    def save(self, index: int, latents: torch.Tensor, carry: Optional[dict[str, torch.Tensor]] = None) -> None:
        """Keep chunk ``index``'s final latents (and what a strategy needs to continue after it) in the job."""
        if self.job is not None:
            self.job.save_chunk(index, latents, carry)
            self.finished = index + 1

    # ------------------------------------------------------------------ cancel and progress
    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled(self.finished, self.plan.num_chunks, str(self.job.path) if self.job else None)

    def chunk_started(self, index: int) -> None:
        self._chunk_started = time.perf_counter()
        self._current = (index, 0)

    def step(self, chunk: int, steps_done: int, last: bool) -> None:
        """One solver step of ``chunk`` finished (``steps_done`` of its steps); checks cancel unless ``last``."""
        now = time.perf_counter()
        self.sampled_steps += 1
        self.sampling_time += now - self._last_tick
        self._last_tick = now
        self._current = (chunk, steps_done)
        self.watch.step_done()
        self._report("step", chunk, steps_done)
        if not last:
            self.check()

    def chunk_done(self, chunk: ChunkSpec, replayed: bool = False) -> None:
        """Chunk ``chunk``'s frames are written."""
        self.finished = max(self.finished, chunk.index + 1)
        if replayed:
            self.replayed += 1
        else:
            now = time.perf_counter()
            self.chunk_seconds.append(now - getattr(self, "_chunk_started", self.started))
            self.sampling_time += now - self._last_tick  # decode and write count towards the ETA
            self._last_tick = now
        self._report("chunk", chunk.index, self.steps, replayed)

    def _report(self, kind, chunk: int, step: int, was_replayed: bool = False, fraction: float = 0.0) -> None:
        if self.progress is None:
            return
        rate = self.sampling_time / self.sampled_steps if self.sampled_steps else None
        eta = None if rate is None else rate * max(0, self.steps_total - self.sampled_steps)
        state = self.state
        self.progress(StreamProgress(kind, chunk, self.plan.num_chunks, step, self.steps, state.frames_written,
                                     self.plan.total_frames, time.perf_counter() - self.started, eta, was_replayed,
                                     state.last_frame if kind == "chunk" else None, fraction))

    def result(self) -> StreamResult:
        return StreamResult(self.state.frames_written, self.plan.num_chunks, self.replayed,
                            time.perf_counter() - self.started, self.chunk_seconds)


class StreamingSampler:
    """Runs one video with its strategy (``settings.strategy``) and the chunk loop's services.

    Args:
        dit: the audio-conditioned DiT (``WanDiT`` or anything with its forward signature).
        vae: a video VAE (``encode`` / ``decode``; ``encode_stream`` / ``decode_stream`` used when present).
        plan: the chunk plan (frame counts); for ``sliding-window`` the windows, built by the strategy's
            :meth:`~talkgen_core.sampling.strategies.Strategy.plan`.
        fps: output frame rate (the audio features must be at this rate).
        references: where each chunk's reference frame comes from.
        conditioning: audio features, text states and optional CLIP encoder.
        settings: sampling settings.
        device: where latents live; defaults to the DiT's device.
    """

    def __init__(self, dit: nn.Module, vae, plan: ChunkPlan, fps: float, references: ReferenceProvider,
                 conditioning: StreamConditioning, settings: StreamSettings,
                 device: Optional[torch.device] = None) -> None:
        from .strategies import get_strategy

        self.dit, self.vae, self.plan, self.fps = dit, vae, plan, float(fps)
        self.references, self.conditioning, self.settings = references, conditioning, settings
        first = next(dit.parameters(), None)
        if device is None:
            device = first.device if first is not None else torch.device("cpu")
        self.device = torch.device(device)
        self.solver = get_solver(settings.solver)
        self.timesteps = settings.time_grid()
        if settings.sdedit_strength < 1.0 and not getattr(references, "with_source_frames", False):
            raise ValueError(
                "sdedit_strength < 1 starts from the source video's latents; use VideoReferences(..., "
                "with_source_frames=True) (video dubbing) or set sdedit_strength=1"
            )
        frames = sorted({int(f.shape[0]) for f in conditioning.audio_features})
        if frames != [plan.total_frames]:
            raise ValueError(
                f"the audio features have {frames} rows per speaker but the plan covers {plan.total_frames} frames; "
                "build the plan from the features' length (ChunkPlan(features.shape[0], ...))"
            )
        self.strategy = get_strategy(settings.strategy)(settings.strategy_params)
        self.strategy.check_plan(plan)
        self.context_latent_frames = latent_frames(plan.context_frames)

    # ------------------------------------------------------------------ per-chunk inputs
    def condition_for(self, chunk: ChunkSpec, reference: torch.Tensor, state: StreamState,
                      check: Optional[Check] = None) -> torch.Tensor:
        """The chunk's ``[1, 4 + z, T, h, w]`` condition, reusing the previous one for an unchanged reference."""
        if state.cached_reference is not None and torch.equal(state.cached_reference, reference):
            assert state.cached_condition is not None
            return state.cached_condition
        reference_on_device = reference.to(self.device)
        condition = encode_reference_condition(self.vae, reference_on_device, chunk.length, check).to(self.device)
        state.cached_reference, state.cached_condition = reference, condition
        return condition

    def clean_context(self, chunk: ChunkSpec, condition: torch.Tensor, state: StreamState) -> torch.Tensor:
        """The clean latents pinned at the chunk's start: ``[1, z, k, h, w]``."""
        if chunk.index == 0:
            return condition[:, MASK_CHANNELS:, :1]  # the reference's own latent (causal VAE: frame 0 alone)
        if self.settings.context_mode == "latent":
            if state.context_latents is None:
                raise RuntimeError(f"chunk {chunk.index} needs the previous chunk's latents; run chunks in order")
            return state.context_latents.to(self.device)
        if state.tail_pixels is None:
            raise RuntimeError(f"chunk {chunk.index} needs the previous chunk's frames; run chunks in order")
        return self.vae.encode(state.tail_pixels.to(self.device)).to(self.device)

    def audio_for(self, chunk: ChunkSpec) -> torch.Tensor:
        """Per-frame audio windows of every speaker: ``[1, P, F, 5, L, D]``."""
        windows = [frame_windows(f, chunk.start, chunk.length) for f in self.conditioning.audio_features]
        return torch.stack(windows)[None].to(self.device, torch.float32)

    def chunk_conditioning(self, chunk: ChunkSpec, reference: torch.Tensor, condition: torch.Tensor,
                           audio: Optional[torch.Tensor] = None) -> ChunkConditioning:
        """Everything the DiT is conditioned on for one chunk or window (``audio``: default :meth:`audio_for`)."""
        c = self.conditioning
        clip = c.clip_encoder(reference.to(self.device)) if c.clip_encoder is not None else None
        return ChunkConditioning(
            cond=condition, context=c.context.to(self.device),
            audio=self.audio_for(chunk) if audio is None else audio,
            negative_context=None if c.negative_context is None else c.negative_context.to(self.device),
            clip_fea=clip, speaker_masks=c.speaker_masks, audio_scale=c.audio_scale,
        )  # fmt: skip

    def guided(self, conditioning: ChunkConditioning) -> GuidedVelocity:
        """The guided velocity ``model_fn(x, t)`` of one chunk (its APG buffers start empty)."""
        return GuidedVelocity(DiTVelocity(self.dit, conditioning), self.settings.guidance)

    def source_latents(self, chunk: ChunkSpec) -> torch.Tensor:
        """SDEdit: the VAE latents of the chunk's window of source frames, ``[1, z, T, h, w]``."""
        source = self.references.source_frames_for(chunk, self.fps)
        if source is None:
            raise ValueError(f"SDEdit needs source frames for chunk {chunk.index}, the reference provider gave none")
        return self.vae.encode(source.to(self.device)).to(self.device, torch.float32)

    def initial_latents(self, chunk: ChunkSpec, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Generator]:
        """Noise from ``(seed, chunk)`` (or the noised source latents for SDEdit): ``[1, z, T, h, w]``."""
        z = condition.shape[1] - MASK_CHANNELS
        shape = (1, z, condition.shape[2], condition.shape[3], condition.shape[4])
        generator = torch.Generator(device="cpu").manual_seed(chunk_seed(self.settings.seed, chunk.index))
        noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)
        if self.settings.sdedit_strength >= 1.0:
            return noise, generator
        s0 = float(self.timesteps[0]) / NUM_TRAIN_TIMESTEPS
        return (1.0 - s0) * self.source_latents(chunk) + s0 * noise, generator

    def check_finite(self, chunk: ChunkSpec, info: StepInfo) -> None:
        if not torch.isfinite(info.x).all():
            raise NonFiniteLatents(chunk.index, self.plan.num_chunks, info.step + 1, info.num_steps)

    # ------------------------------------------------------------------ sampling and output
    def sample_chunk(self, chunk: ChunkSpec, state: StreamState,
                     on_step: Optional[Callable[[StepInfo], None]] = None,
                     check: Optional[Check] = None) -> torch.Tensor:
        """Sample one chunk's latents ``[1, z, T, h, w]`` with a chained strategy (``infinitetalk``,
        ``memory-bank``); ``check`` as in :meth:`run`."""
        if not hasattr(self.strategy, "sample_chunk"):
            raise ValueError(f"the {self.settings.strategy} strategy samples no chunk on its own; use run()")
        return self.strategy.sample_chunk(self, chunk, state, on_step, check)

    def _decoded_chunk(self, chunk: ChunkSpec, latents: torch.Tensor, state: StreamState,
                       check: Optional[Check]) -> tuple[Iterator[torch.Tensor], int]:
        """The chunk's decoded frames as pieces ``[1, 3, n, H, W]``, and the window offset of the first one.

        In latent mode with a VAE that decodes streams (``new_decode_state`` / ``decode_chunk``) the decoder's
        causal history carries over chunks: a chunk's leading latents are exactly the previous chunk's tail, so
        only the new latents are decoded and the output is the one-pass decode of the whole latent video (the
        VAE adds no seam at chunk boundaries). Otherwise every chunk is decoded as a new stream.
        """
        vae = self.vae
        if self.settings.context_mode != "latent" or not hasattr(vae, "new_decode_state"):
            state.decode_state = None
            return decoded_pieces(vae, latents, check=check), 0
        if chunk.index == 0 or state.decode_state is None or chunk.context_latents != self.context_latent_frames:
            state.decode_state = vae.new_decode_state()
            return decoded_pieces(vae, latents, state.decode_state, check), 0
        state.decode_state.to(self.device)
        new = latents[:, :, chunk.context_latents :]
        offset = chunk.length - vae.temporal_stride * new.shape[2]
        return decoded_pieces(vae, new, state.decode_state, check), offset

    @functools.cached_property
    def _colour_target(self) -> ColourTarget:
        """The colour reference's Lab statistics, once per run (every provider's colour reference is fixed)."""
        return ColourTarget.of(self.references.colour_reference())

    def _write_pieces(self, pieces: Iterator[torch.Tensor], offset: int, keep: tuple[int, int], sink: FrameSink,
                      state: StreamState, tail_from: Optional[int] = None) -> tuple[int, list[torch.Tensor]]:
        """Colour-correct decoded pieces and write the frames at window offsets ``keep = [lo, hi)``; returns the
        offset after the last piece and the pieces' frames from ``tail_from`` on (pixel-mode context)."""
        colour_ref = self._colour_target if self.settings.colour_strength > 0 else None
        tail: list[torch.Tensor] = []
        for piece in pieces:
            n = piece.shape[2]
            if colour_ref is not None:
                piece = match_colours(piece, colour_ref, self.settings.colour_strength)
            lo, hi = max(keep[0], offset), min(keep[1], offset + n)
            if hi > lo:
                sink.write(piece[0, :, lo - offset : hi - offset].permute(1, 0, 2, 3))
                state.last_frame = piece[0, :, hi - offset - 1].detach().cpu()
                state.frames_written += hi - lo
            if tail_from is not None and offset + n > tail_from:
                tail.append(piece[:, :, max(0, tail_from - offset) :].cpu())
            offset += n
        return offset, tail

    @torch.no_grad()
    def finish_chunk(self, chunk: ChunkSpec, latents: torch.Tensor, state: StreamState, sink: FrameSink,
                     check: Optional[Check] = None) -> None:
        """Decode, colour-correct, write the chunk's output frames and update the state for the next chunk."""
        keep_tail = self.settings.context_mode == "pixel"
        pieces, offset = self._decoded_chunk(chunk, latents.to(self.device), state, check)
        offset, tail = self._write_pieces(pieces, offset, (chunk.keep_from, chunk.keep_until), sink, state,
                                          chunk.length - self.plan.context_frames if keep_tail else None)
        if offset != chunk.length:
            raise RuntimeError(f"the VAE decoded {offset} frames for a {chunk.length}-frame chunk")
        if state.decode_state is not None:
            state.decode_state.to("cpu")  # the decoder's history waits off the accelerator while the DiT samples
        state.context_latents = latents[:, :, -self.context_latent_frames :].detach().clone()
        state.tail_pixels = torch.cat(tail, dim=2) if keep_tail else None
        state.next_chunk = chunk.index + 1

    @torch.no_grad()
    def finish_segment(self, index: int, first_latent: int, latents: torch.Tensor, state: StreamState,
                       sink: FrameSink, check: Optional[Check] = None) -> None:
        """Decode the final latents ``[1, z, n, h, w]`` of a video-wide latent stream from latent
        ``first_latent`` on (continuing the decode of the segments before), colour-correct, and write the
        frames that lie inside the audio. Segment ``index`` is the ``index``-th in stream order.

        Latent 0 is frame 0 alone and latent ``g >= 1`` frames ``4 g - 3 .. 4 g`` (the causal VAE). A VAE
        without decode streams decodes each segment after the previous segment's last latent and drops that
        latent's frame.
        """
        latents = latents.to(self.device)
        stride = int(getattr(self.vae, "temporal_stride", 4))
        first_frame = 0 if first_latent == 0 else stride * (first_latent - 1) + 1
        n_frames = stride * latents.shape[2] - (stride - 1 if first_latent == 0 else 0)
        if hasattr(self.vae, "new_decode_state"):
            if first_latent == 0:
                state.decode_state = self.vae.new_decode_state()
            state.decode_state.to(self.device)
            pieces, offset = decoded_pieces(self.vae, latents, state.decode_state, check), 0
        elif first_latent == 0:
            pieces, offset = decoded_pieces(self.vae, latents, check=check), 0
        else:
            history = state.context_latents.to(self.device)  # the previous segment's last latent
            pieces, offset = decoded_pieces(self.vae, torch.cat([history, latents], dim=2), check=check), -1
        keep = (0, min(n_frames, self.plan.total_frames - first_frame))
        offset, _ = self._write_pieces(pieces, offset, keep, sink, state)
        if offset != n_frames:
            raise RuntimeError(f"the VAE decoded {offset} frames for {latents.shape[2]} latent frames")
        if state.decode_state is not None:
            state.decode_state.to("cpu")
        state.context_latents = latents[:, :, -1:].detach().clone()
        state.next_chunk = index + 1

    def run(self, sink: FrameSink, job: Optional[JobDir] = None,
            progress: Optional[Callable[[StreamProgress], None]] = None,
            cancel: Optional[Callable[[], bool]] = None, state: Optional[StreamState] = None,
            block_report_s: float = BLOCK_REPORT_S) -> StreamResult:
        """Run every remaining chunk with the strategy; finished chunks in ``job`` are replayed from it.

        ``cancel`` is asked before every chunk, between solver steps, before every DiT block (so also between
        CFG passes) and between the latent frames of streamed VAE passes; a yes raises :class:`Cancelled`.
        While a step runs, "block" progress events say how far it got, at most every ``block_report_s``.
        """
        state = state or StreamState()
        loop = ChunkLoop(self, job, progress, cancel, state, block_report_s)
        with before_each_block(self.dit, loop.watch.before_block):
            self.strategy.run(self, loop, sink, state)
        return loop.result()
