"""Solvers against analytic answers; the shared signature, StepInfo and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from talkgen_core.sampling.schedules import flow_timesteps
from talkgen_core.sampling.solvers import SOLVERS, StepInfo, euler, euler_ancestral, get_solver

DETERMINISTIC = ["euler", "heun", "dpmpp_2m"]


def straight_path_field(x0: torch.Tensor):
    """Velocity of the flow-matching path towards x0: x = (1 - s) x0 + s n  =>  v = n - x0 = (x - x0) / s."""
    return lambda x, t: (x - x0) / (t / 1000.0)


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("shift", [1.0, 7.0])
def test_straight_path_is_solved_exactly(name, shift):
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    out = SOLVERS[name](straight_path_field(x0), noise.clone(), flow_timesteps(6, shift))
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


def linear_field(a: float):
    """v = a x: dx/ds = a x, so from x(1) = x1 the solution at s = 0 is x1 exp(-a)."""
    return lambda x, t: a * x


def solve_error(name: str, steps: int, a: float = 1.5) -> float:
    x1 = torch.linspace(-1, 1, 5, dtype=torch.float64)
    out = SOLVERS[name](linear_field(a), x1.clone(), flow_timesteps(steps, shift=1.0))
    return float((out - x1 * math.exp(-a)).abs().max())


def test_linear_ode_convergence_orders():
    e_euler = [solve_error("euler", n) for n in (20, 40)]
    e_heun = [solve_error("heun", n) for n in (20, 40)]
    e_dpm = [solve_error("dpmpp_2m", n) for n in (20, 40)]
    assert e_euler[1] < e_euler[0] and 1.6 < e_euler[0] / e_euler[1] < 2.5  # first order
    assert 3.0 < e_heun[0] / e_heun[1] < 5.0  # second order
    assert e_heun[1] < e_euler[1] / 20
    assert e_dpm[1] < e_dpm[0] and e_dpm[1] < 0.05


def test_step_info_and_in_place_edits():
    seen: list[StepInfo] = []
    pinned = torch.full((2,), 7.0)

    def callback(info: StepInfo) -> None:
        seen.append(info)
        info.x[:2] = pinned  # the solver must continue from the edited state

    x0 = torch.zeros(4)
    out = euler(straight_path_field(x0), torch.ones(4), flow_timesteps(5), callback=callback)
    assert [i.step for i in seen] == list(range(5)) and all(i.num_steps == 5 for i in seen)
    assert seen[0].t == 1000.0 and seen[-1].t_next == 0.0
    torch.testing.assert_close(seen[0].denoised, x0)
    torch.testing.assert_close(out[:2], pinned)


def test_euler_ancestral_uses_the_generator():
    field = linear_field(0.5)
    x, grid = torch.ones(8), flow_timesteps(6)
    a = euler_ancestral(field, x.clone(), grid, generator=torch.Generator().manual_seed(1))
    b = euler_ancestral(field, x.clone(), grid, generator=torch.Generator().manual_seed(1))
    c = euler_ancestral(field, x.clone(), grid, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.testing.assert_close(euler_ancestral(field, x.clone(), grid, eta=0.0), euler(field, x.clone(), grid))


def test_registry_and_bad_input():
    assert get_solver("heun") is SOLVERS["heun"]
    with pytest.raises(ValueError, match="euler"):
        get_solver("ddim")
    with pytest.raises(ValueError, match="decreasing"):
        euler(lambda x, t: x, torch.ones(2), torch.tensor([0.0, 500.0]))
    with pytest.raises(ValueError, match="shape"):
        euler(lambda x, t: x[:1], torch.ones(2), flow_timesteps(2))
