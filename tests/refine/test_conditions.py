"""The refiner's conditions: degraded low-resolution latents and landmark heatmaps."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.refine.degrade import degrade, gaussian_kernel, low_pass
from talkgen_core.refine.pose import pose_maps


def _latents(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 4, 3, 6, 5, generator=torch.Generator().manual_seed(seed))


def test_degrade_upsamples_blurs_and_noises_deterministically():
    lr = _latents()
    a = degrade(lr, 2, 0.3, torch.Generator().manual_seed(7))
    b = degrade(lr, 2, 0.3, torch.Generator().manual_seed(7))
    c = degrade(lr, 2, 0.3, torch.Generator().manual_seed(8))
    assert a.shape == (1, 4, 3, 12, 10) and torch.equal(a, b) and not torch.equal(a, c)
    clean = degrade(lr, 2, 0.0)
    noise = (a - clean) / 0.3
    assert noise.std().item() == pytest.approx(1.0, abs=0.15) and noise.mean().abs().item() < 0.15
    # the low-pass removes detail: the blurred upsample varies less from pixel to pixel than the plain one
    sharp = degrade(lr, 2, 0.0, sigma=0)
    assert clean.diff(dim=-1).abs().mean() < 0.7 * sharp.diff(dim=-1).abs().mean()


def test_low_pass_keeps_constants_and_the_mean():
    assert gaussian_kernel(1.0).sum().item() == pytest.approx(1.0)
    flat = torch.full((2, 3, 8, 8), 0.25)
    assert torch.allclose(low_pass(flat, 1.5), flat)
    spike = torch.zeros(1, 1, 9, 9)
    spike[0, 0, 4, 4] = 1.0
    blurred = low_pass(spike, 1.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5) and blurred[0, 0, 4, 4] < 0.2


def test_degrade_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"\[B, z, T, h, w\]"):
        degrade(torch.zeros(4, 3, 6, 5), 2, 0.1)
    with pytest.raises(ValueError, match="scale"):
        degrade(_latents(), 0, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        degrade(_latents(), 2, -1.0)


def test_pose_maps_peak_at_the_landmarks():
    points = torch.tensor([[[3.0, 2.0], [6.5, 5.0]], [[0.0, 0.0], [float("nan"), 1.0]]])
    maps = pose_maps(points, 8, 10, sigma=1.0)
    assert maps.shape == (2, 2, 8, 10)
    assert maps[0, 0, 2, 3] == 1.0 and maps[0, 0].argmax().item() == 2 * 10 + 3
    assert maps[0, 1, 5, 6].item() == pytest.approx(torch.exp(torch.tensor(-0.125)).item())
    assert maps[0, 0, 2, 4].item() == pytest.approx(torch.exp(torch.tensor(-0.5)).item())
    assert maps[1, 1].abs().sum() == 0  # an unseen landmark
    with pytest.raises(ValueError, match="sigma"):
        pose_maps(points, 8, 10, sigma=0)
