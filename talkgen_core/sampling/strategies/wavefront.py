"""Schedules and fusion weights of sliding-window denoising, as plain data.

Windows ``0 .. K-1`` of ``W`` latent frames start every ``S = W - O`` latents, so neighbours share ``O``
latents (``2 O <= W``: only neighbours overlap). One *operation* ``(k, s)`` is solver step ``s`` (from
``t_s`` to ``t_{s+1}``) of window ``k``. Step ``s`` of window ``k`` needs the fused latents at level ``s``
on all its frames, i.e. step ``s - 1`` of windows ``k - 1``, ``k`` and ``k + 1`` done.

* :func:`lockstep` does all windows' step 0, then all step 1, ...: every window is alive at once.
* :func:`wavefront` orders the operations by ``s + k``, later windows first among equals: window ``k`` takes
  step ``s`` right after window ``k + 1`` took step ``s - 1``, so window ``k + j`` trails window ``k`` by ``j``
  steps and only a band of ``steps`` windows is alive. Both orders give the same fused latents bit for bit:
  each operation sees the same inputs, and the two windows on an overlap add their shares in the same order
  (the earlier window first: ``(k, s)`` comes before ``(k + 1, s)`` in both).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

Operation = tuple[int, int]  # (window, step)


def lockstep(num_windows: int, steps: int) -> Iterator[Operation]:
    for s in range(steps):
        for k in range(num_windows):
            yield k, s


def wavefront(num_windows: int, steps: int) -> Iterator[Operation]:
    for tick in range(steps - 1 + num_windows):
        for k in range(min(num_windows - 1, tick), max(0, tick - (steps - 1)) - 1, -1):
            yield k, tick - k


def ramp(overlap: int) -> torch.Tensor:
    """The later window's weights across an overlap of ``overlap`` latents: ``j / overlap`` for ``j = 0 ..
    overlap - 1``, rising from 0 on its first latent (which it only shows the model, as the earlier window's
    clean estimate; see ``sliding_window``); the earlier window takes one minus these. ``[overlap]`` float32"""
    return torch.arange(overlap, dtype=torch.float32) / overlap


def window_weights(index: int, num_windows: int, window: int, overlap: int) -> torch.Tensor:
    """Fusion weights of window ``index`` over its ``window`` latents: 1, ramping up over the overlap with the
    window before and down over the overlap with the window after; the weights of all windows on a latent
    sum to one. ``[window]`` float32"""
    weights = torch.ones(window, dtype=torch.float32)
    if overlap and index > 0:
        weights[:overlap] = ramp(overlap)
    if overlap and index < num_windows - 1:
        weights[window - overlap :] = 1.0 - ramp(overlap)
    return weights


def final_latents(index: int, num_windows: int, stride: int, window: int) -> tuple[int, int]:
    """The latents ``[lo, hi)`` that are final once window ``index`` took its last step: from its start to the
    start of the next window (the last window: to its end)."""
    lo = index * stride
    return lo, (lo + window if index == num_windows - 1 else lo + stride)
