"""Turn the audio-conditioned DiT into velocity functions of ``(x, t)`` for one chunk.

:class:`DiTVelocity` holds the per-chunk conditioning (:class:`ChunkConditioning`) and evaluates the model
for any set of CFG *branches* (prompt or negative prompt, real or null audio), either as one batched
forward or one forward per branch. Guidance (:mod:`.guidance`) combines the branches; solvers only ever see
``model_fn(x, t) -> v``.

:func:`pin_leading_frames` wraps any velocity function so that the first latent frames are held at given
clean values (the context frames of the streaming sampler).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence, Union

import torch
from torch import nn

from talkgen_core.models.step_cache import ChunkStepCache, optional_around


class Branch(enum.Enum):
    """One CFG pass: which text (positive or negative prompt) and which audio (real or null)."""

    COND = ("positive", True)
    DROP_TEXT = ("negative", True)
    UNCOND = ("negative", False)
    DROP_AUDIO = ("positive", False)

    @property
    def positive_text(self) -> bool:
        return self.value[0] == "positive"

    @property
    def real_audio(self) -> bool:
        return self.value[1]


@dataclass
class ChunkConditioning:
    """Everything the DiT is conditioned on for one chunk (batch size 1)."""

    cond: torch.Tensor  # [1, 4 + z, T, h, w]   first-frame mask (4) | conditioning latent (z)
    context: torch.Tensor  # [1, L_txt, text_dim] prompt states
    negative_context: Optional[torch.Tensor] = None  # [1, L_neg, text_dim]; None = zeros like context
    clip_fea: Optional[torch.Tensor] = None  # [1, 257, clip_dim] of the chunk's reference frame
    audio: Optional[torch.Tensor] = None  # [1, P, F, 5, L, D] per-frame audio windows, F = 4 (T - 1) + 1
    speaker_masks: Optional[torch.Tensor] = None  # [P, h', w'] any resolution
    audio_scale: Union[float, torch.Tensor] = 1.0  # float or [P]

    def __post_init__(self) -> None:
        if self.cond.ndim != 5 or self.cond.shape[0] != 1:
            raise ValueError(f"cond must be [1, 4 + z, T, h, w], got {tuple(self.cond.shape)}")
        if self.context.ndim != 3 or self.context.shape[0] != 1:
            raise ValueError(f"context must be [1, L, text_dim], got {tuple(self.context.shape)}")
        if self.audio is not None and (self.audio.ndim != 6 or self.audio.shape[0] != 1):
            raise ValueError(f"audio must be [1, P, F, 5, L, D], got {tuple(self.audio.shape)}")

    @property
    def num_speakers(self) -> int:
        return 0 if self.audio is None else int(self.audio.shape[1])

    def null_audio(self) -> Optional[torch.Tensor]:
        """The official "no audio" input: all-zero features for a single speaker. [1, 1, F, 5, L, D]"""
        if self.audio is None:
            return None
        return torch.zeros_like(self.audio[:, :1])

    def text_for(self, branch: Branch) -> torch.Tensor:
        if branch.positive_text:
            return self.context
        if self.negative_context is None:
            return torch.zeros_like(self.context)
        return self.negative_context


class BranchModel(Protocol):
    """Evaluates the velocity for several CFG branches at once (what guidance needs)."""

    def evaluate(self, x: torch.Tensor, t: float, branches: Sequence[Branch], batch: bool) -> list[torch.Tensor]: ...


def _pad_tokens(states: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Zero-pad [1, L_i, D] text states to a common L (the DiT zero-pads to text_len anyway)."""
    longest = max(s.shape[1] for s in states)
    return [torch.nn.functional.pad(s, (0, 0, 0, longest - s.shape[1])) for s in states]


class DiTVelocity:
    """A WanDiT bound to one chunk's conditioning; ``self(x, t)`` is the conditional velocity.

    Inputs are passed in float32 (the state's dtype); the DiT casts to its own compute dtype.

    ``calls`` counts DiT forwards, which lets tests check how many passes each guidance mode costs.
    ``step_cache``: the chunk's step cache (one per velocity, so per chunk) when the DiT runs with one.
    """

    def __init__(self, dit: nn.Module, conditioning: ChunkConditioning) -> None:
        self.dit = dit
        self.conditioning = conditioning
        self.calls = 0
        self.step_cache = ChunkStepCache.for_model(dit)

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return self.evaluate(x, t, (Branch.COND,), batch=True)[0]

    def _branch_inputs(self, branch: Branch) -> tuple[torch.Tensor, Optional[torch.Tensor], bool]:
        c = self.conditioning
        audio = c.audio if branch.real_audio else c.null_audio()
        # the null audio is one speaker: it uses the single-speaker path, without masks (as officially)
        single_null = (not branch.real_audio) and c.num_speakers > 1
        return c.text_for(branch), audio, single_null

    def _forward(self, x: torch.Tensor, t: float, texts: list[torch.Tensor],
                 audios: list[Optional[torch.Tensor]], without_masks: bool, branches: Sequence[Branch]) -> torch.Tensor:
        c = self.conditioning
        n = len(texts)
        device, dtype = x.device, x.dtype
        texts = _pad_tokens(texts)
        kwargs: dict = {}
        if c.clip_fea is not None:
            kwargs["clip_fea"] = c.clip_fea.expand(n, -1, -1).to(device, dtype)
        if audios[0] is not None:
            kwargs["audio"] = torch.cat(audios).to(device, dtype)
            if c.speaker_masks is not None and not without_masks:
                kwargs["speaker_masks"] = c.speaker_masks.to(device)
            scale = c.audio_scale
            kwargs["audio_scale"] = 1.0 if (without_masks and isinstance(scale, torch.Tensor)) else scale
        self.calls += 1
        with optional_around(self.step_cache, self.dit, branches, float(t)):
            v = self.dit(
                x.expand(n, -1, -1, -1, -1),
                torch.full((n,), float(t), device=device, dtype=torch.float32),
                torch.cat(texts).to(device, dtype),
                c.cond.to(device, dtype).expand(n, -1, -1, -1, -1),
                **kwargs,
            )
        return v.to(x.dtype)

    def evaluate(self, x: torch.Tensor, t: float, branches: Sequence[Branch], batch: bool = True) -> list[torch.Tensor]:
        """Velocities ``[B=1, z, T, h, w]`` for each branch, in order.

        With ``batch=True`` branches that can share a forward are stacked along the batch axis: all of them
        for one speaker; for several speakers the null-audio branches (one zero speaker, no masks) form a
        second forward, since their audio tensor has a different speaker count.
        """
        if x.shape[0] != 1:
            raise ValueError(f"DiTVelocity evaluates one video at a time; x has batch {x.shape[0]}")
        inputs = [self._branch_inputs(b) for b in branches]
        results: list[Optional[torch.Tensor]] = [None] * len(branches)
        if not batch:
            for i, (text, audio, no_masks) in enumerate(inputs):
                results[i] = self._forward(x, t, [text], [audio], no_masks, [branches[i]])
            return [r for r in results if r is not None]
        groups: dict[bool, list[int]] = {}
        for i, (_, _, no_masks) in enumerate(inputs):
            groups.setdefault(no_masks, []).append(i)
        for no_masks, idx in groups.items():
            out = self._forward(x, t, [inputs[i][0] for i in idx], [inputs[i][1] for i in idx], no_masks,
                                [branches[i] for i in idx])
            for j, i in enumerate(idx):
                results[i] = out[j : j + 1]
        return [r for r in results if r is not None]


VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]


def pin_leading_frames(model_fn: VelocityFn, clean: torch.Tensor, trailing: Optional[torch.Tensor] = None) -> VelocityFn:
    """Hold the first ``clean.shape[2]`` latent frames at ``clean`` (and, with ``trailing``, the last ones at
    ``trailing``) through any linear solver.

    Before the model sees ``x`` the pinned frames are replaced by the clean latents (as officially: the
    context frames are clean while labelled with the current t). The returned velocity is zero there, so a
    solver step that combines states and velocities linearly leaves those frames where they are; the
    streaming loop also re-writes them after every step to remove rounding.

    clean: ``[B, z, k, h, w]``; trailing: ``[B, z, j, h, w]`` or None; x: ``[B, z, T, h, w]`` with ``T > k + j``.
    """
    k = clean.shape[2]
    j = 0 if trailing is None else trailing.shape[2]

    def pinned(x: torch.Tensor, t: float) -> torch.Tensor:
        x = x.clone()
        x[:, :, :k] = clean.to(x)
        if j:
            x[:, :, -j:] = trailing.to(x)
        v = model_fn(x, t).clone()
        v[:, :, :k] = 0
        if j:
            v[:, :, -j:] = 0
        return v

    return pinned
