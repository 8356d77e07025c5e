"""ODE/SDE solvers for flow matching on a velocity model.

Every solver has the same signature::

    solver(model_fn, x, timesteps, callback=None, generator=None) -> x0

* ``model_fn(x, t) -> v``: the velocity ``v = noise - x0`` at time ``t`` (a float in [0, 1000]) for the state
  ``x`` (any shape; the streaming sampler uses ``[B, z, T, H, W]``); guidance is already folded into it.
* ``timesteps``: a grid from :mod:`talkgen_core.sampling.schedules` (decreasing, ending at 0).
* ``callback(StepInfo)`` runs after every step. It may edit ``info.x`` in place (the streaming sampler
  re-pins its clean context latents this way); the solver continues from the edited tensor.
* ``generator``: the noise source of stochastic solvers; deterministic solvers ignore it.

With the noise fraction ``s = t / 1000`` the path is ``x_s = (1 - s) x0 + s noise``, so the clean estimate
at any point is ``x0 = x - s v``. :data:`SOLVERS` maps names to solvers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import torch

from .schedules import NUM_TRAIN_TIMESTEPS


class VelocityFn(Protocol):
    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor: ...


@dataclass
class StepInfo:
    """What a solver reports after each step."""

    step: int  # 0-based index of the finished step
    num_steps: int
    t: float  # time the step started from, in [0, 1000]
    t_next: float  # time the step reached
    x: torch.Tensor  # state at t_next (callbacks may edit it in place)
    denoised: torch.Tensor  # clean estimate x0 at t, from the last model evaluation


StepCallback = Callable[[StepInfo], None]


def _check_grid(timesteps: torch.Tensor) -> list[float]:
    if timesteps.ndim != 1 or timesteps.numel() < 2:
        raise ValueError(f"timesteps must be a 1-D grid with at least 2 entries, got shape {tuple(timesteps.shape)}")
    times = [float(v) for v in timesteps]
    if any(b >= a for a, b in zip(times, times[1:])):
        raise ValueError("timesteps must be strictly decreasing")
    return times


def _velocity(model_fn: VelocityFn, x: torch.Tensor, t: float) -> torch.Tensor:
    v = model_fn(x, t)
    if v.shape != x.shape:
        raise ValueError(f"model_fn returned shape {tuple(v.shape)} for input shape {tuple(x.shape)}")
    return v.to(x.dtype)


def _report(callback: Optional[StepCallback], i: int, n: int, t: float, t_next: float, x, denoised) -> None:
    if callback is not None:
        callback(StepInfo(step=i, num_steps=n, t=t, t_next=t_next, x=x, denoised=denoised))


def euler(model_fn: VelocityFn, x: torch.Tensor, timesteps: torch.Tensor,
          callback: Optional[StepCallback] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """First-order Euler on the velocity (the official sampler): ``x += (s_next - s) v``."""
    times = _check_grid(timesteps)
    n = len(times) - 1
    for i in range(n):
        t, t_next = times[i], times[i + 1]
        v = _velocity(model_fn, x, t)
        denoised = x - (t / NUM_TRAIN_TIMESTEPS) * v
        x = x + ((t_next - t) / NUM_TRAIN_TIMESTEPS) * v
        _report(callback, i, n, t, t_next, x, denoised)
    return x


def heun(model_fn: VelocityFn, x: torch.Tensor, timesteps: torch.Tensor,
         callback: Optional[StepCallback] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Second-order Heun (trapezoidal predictor-corrector); the step that lands on t = 0 is plain Euler.

    Two model evaluations per step except the last.
    """
    times = _check_grid(timesteps)
    n = len(times) - 1
    for i in range(n):
        t, t_next = times[i], times[i + 1]
        dt = (t_next - t) / NUM_TRAIN_TIMESTEPS
        v = _velocity(model_fn, x, t)
        denoised = x - (t / NUM_TRAIN_TIMESTEPS) * v
        x_euler = x + dt * v
        if t_next == 0.0:
            x = x_euler
        else:
            v_next = _velocity(model_fn, x_euler, t_next)
            x = x + dt * 0.5 * (v + v_next)
        _report(callback, i, n, t, t_next, x, denoised)
    return x


def _log_snr(s: float) -> float:
    """lambda = log(alpha / sigma) with alpha = 1 - s, sigma = s; +-inf at the ends."""
    if s <= 0.0:
        return math.inf
    if s >= 1.0:
        return -math.inf
    return math.log((1.0 - s) / s)


def dpmpp_2m(model_fn: VelocityFn, x: torch.Tensor, timesteps: torch.Tensor,
             callback: Optional[StepCallback] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) in data prediction on the flow-matching path.

    With ``alpha = 1 - s``, ``sigma = s`` and ``lambda = log(alpha / sigma)``, one step is
    ``x' = (sigma'/sigma) x + (alpha' - alpha sigma'/sigma) D``, where ``D`` is the clean estimate, corrected
    with the previous step's estimate (``D = (1 + 1/2r) x0 - 1/2r x0_prev``, ``r = h_prev / h``) when both
    step sizes in lambda are finite. The first step from s = 1 and the last to s = 0 are first order.
    """
    times = _check_grid(timesteps)
    n = len(times) - 1
    prev_denoised: Optional[torch.Tensor] = None
    prev_h = math.inf
    for i in range(n):
        t, t_next = times[i], times[i + 1]
        s, s_next = t / NUM_TRAIN_TIMESTEPS, t_next / NUM_TRAIN_TIMESTEPS
        v = _velocity(model_fn, x, t)
        denoised = x - s * v
        h = _log_snr(s_next) - _log_snr(s)
        estimate = denoised
        if prev_denoised is not None and math.isfinite(h) and math.isfinite(prev_h):
            r = prev_h / h
            estimate = (1.0 + 1.0 / (2.0 * r)) * denoised - (1.0 / (2.0 * r)) * prev_denoised
        ratio = s_next / s
        x = ratio * x + ((1.0 - s_next) - (1.0 - s) * ratio) * estimate
        prev_denoised, prev_h = denoised, h
        _report(callback, i, n, t, t_next, x, denoised)
    return x


def euler_ancestral(model_fn: VelocityFn, x: torch.Tensor, timesteps: torch.Tensor,
                    callback: Optional[StepCallback] = None, generator: Optional[torch.Generator] = None,
                    *, eta: float = 1.0) -> torch.Tensor:
    """Stochastic Euler: each step re-noises the clean estimate with a blend of the implied noise and fresh noise.

    ``x' = (1 - s') x0 + s' (sqrt(1 - eta^2) eps + eta z)`` with ``eps = x + (1 - s) v`` the noise the model
    implies and ``z`` fresh Gaussian noise from ``generator``. ``eta = 0`` is exactly Euler.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    times = _check_grid(timesteps)
    n = len(times) - 1
    for i in range(n):
        t, t_next = times[i], times[i + 1]
        s, s_next = t / NUM_TRAIN_TIMESTEPS, t_next / NUM_TRAIN_TIMESTEPS
        v = _velocity(model_fn, x, t)
        denoised = x - s * v
        implied_noise = x + (1.0 - s) * v
        if eta > 0.0 and s_next > 0.0:
            device = generator.device if generator is not None else x.device
            fresh = torch.randn(x.shape, generator=generator, device=device, dtype=torch.float32).to(x)
            noise = math.sqrt(1.0 - eta * eta) * implied_noise + eta * fresh
        else:
            noise = implied_noise
        x = (1.0 - s_next) * denoised + s_next * noise
        _report(callback, i, n, t, t_next, x, denoised)
    return x


Solver = Callable[..., torch.Tensor]

SOLVERS: dict[str, Solver] = {
    "euler": euler,
    "heun": heun,
    "dpmpp_2m": dpmpp_2m,
    "euler_ancestral": euler_ancestral,
}


def get_solver(name: str) -> Solver:
    """Look a solver up by name; an unknown name raises an error listing the valid ones."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; choose one of: {', '.join(SOLVERS)}") from None
