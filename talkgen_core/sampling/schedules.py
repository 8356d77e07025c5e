"""Flow-matching time grids.

Time runs from 1000 (pure noise) to 0 (clean data), the DiT's timestep units; ``s = t / 1000`` is the noise
fraction in ``x_t = (1 - s) x0 + s * noise``. A schedule is plain data: a 1-D float64 tensor that starts at
the first model time and ends with an exact 0, so solvers never need to know how it was made.

The official InfiniteTalk grid is ``linspace(1000, 1, steps)`` followed by 0, each time warped by the shift

    t' = 1000 * s u / (1 + (s - 1) u),   u = t / 1000,

which spends more steps at high noise for larger ``s`` (7 at 480p, 11 at 720p).
"""

from __future__ import annotations

import torch

NUM_TRAIN_TIMESTEPS = 1000.0
SHIFT_480P = 7.0
SHIFT_720P = 11.0
# the official grid's last model time before the final 0, in unshifted units
_LAST_UNSHIFTED_TIME = 1.0

SHIFT_BY_RESOLUTION: dict[str, float] = {"480p": SHIFT_480P, "720p": SHIFT_720P}


def default_shift(resolution: str) -> float:
    """The official shift for a resolution name ("480p" -> 7, "720p" -> 11)."""
    try:
        return SHIFT_BY_RESOLUTION[resolution]
    except KeyError:
        raise ValueError(
            f"no default shift for resolution {resolution!r}; known: {', '.join(SHIFT_BY_RESOLUTION)}, "
            "or pass shift= explicitly"
        ) from None


def shift_fraction(u: torch.Tensor | float, shift: float) -> torch.Tensor:
    """Warp a noise fraction u in [0, 1]: ``s u / (1 + (s - 1) u)``."""
    u = torch.as_tensor(u, dtype=torch.float64)
    return shift * u / (1.0 + (shift - 1.0) * u)


def unshift_fraction(v: torch.Tensor | float, shift: float) -> torch.Tensor:
    """Inverse of :func:`shift_fraction`: the u with ``shift_fraction(u, shift) == v``."""
    v = torch.as_tensor(v, dtype=torch.float64)
    return v / (shift - (shift - 1.0) * v)


def flow_timesteps(steps: int, shift: float = SHIFT_480P, start: float = 1.0) -> torch.Tensor:
    """The official shifted flow-matching grid, optionally starting part-way for SDEdit.

    Args:
        steps: number of model evaluations (solver steps); the grid has ``steps + 1`` entries.
        shift: time shift ``s`` (1 = no warp).
        start: noise fraction of the first model time, in (0, 1]. 1 reproduces the official grid exactly;
            below 1 the grid runs from ``1000 * start`` (after the shift) to 0, for partial denoising of an
            initial latent noised to that level (SDEdit strength).

    Returns:
        ``[steps + 1]`` float64 times in [0, 1000], strictly decreasing, last entry exactly 0.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    if not 0.0 < start <= 1.0:
        raise ValueError(f"start (SDEdit strength) must be in (0, 1], got {start}")
    last_u = _LAST_UNSHIFTED_TIME / NUM_TRAIN_TIMESTEPS
    first_u = float(unshift_fraction(start, shift))
    if first_u <= last_u:
        raise ValueError(f"start={start} is below the smallest model time of the grid; use a larger start")
    if steps > 1:
        u = torch.linspace(first_u, last_u, steps, dtype=torch.float64)
    else:
        u = torch.tensor([first_u], dtype=torch.float64)
    times = NUM_TRAIN_TIMESTEPS * shift_fraction(u, shift)
    if start == 1.0:
        times[0] = NUM_TRAIN_TIMESTEPS  # exact, independent of rounding in the inverse
    return torch.cat([times, torch.zeros(1, dtype=torch.float64)])


def explicit_timesteps(times: tuple[float, ...] | list[float], shift: float = 1.0) -> torch.Tensor:
    """A published grid given as model times before the shift (SoulX-FlashTalk: 1000, 750, 500, 250), warped by
    ``shift`` the way :func:`flow_timesteps` warps its linspace, followed by the final 0.

    Returns:
        ``[len(times) + 1]`` float64 times in [0, 1000], strictly decreasing, last entry exactly 0.
    """
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    u = torch.tensor([float(t) for t in times], dtype=torch.float64) / NUM_TRAIN_TIMESTEPS
    if u.numel() < 1 or not bool(((u > 0) & (u <= 1)).all()) or not bool((u[1:] < u[:-1]).all()):
        raise ValueError(f"explicit timesteps must be strictly decreasing times in (0, 1000], got {list(times)}")
    return torch.cat([NUM_TRAIN_TIMESTEPS * shift_fraction(u, shift), torch.zeros(1, dtype=torch.float64)])
