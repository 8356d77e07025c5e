"""RefinerDiT on the tiny DiT: shapes, determinism, pose conditioning, and the prefix anchor kept exactly."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.models.dit import build_dit
from talkgen_core.refine.degrade import degrade
from talkgen_core.refine.model import PoseEncoder, RefinerDiT, latent_groups, loss_weights, refine_latents
from talkgen_core.sampling.schedules import flow_timesteps

K = 8  # landmarks


def _refiner(seed: int = 0) -> RefinerDiT:
    torch.manual_seed(seed)  # the pose encoder's hidden layers
    return RefinerDiT(build_dit("tiny", seed=seed), landmarks=K)


def _inputs(seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    lr = torch.randn(1, 16, 2, 2, 2, generator=g)
    return {
        "context": torch.randn(1, 4, 32, generator=g),
        "degraded": degrade(lr, 2, 0.2, torch.Generator().manual_seed(3)),  # [1, 16, 2, 4, 4]
        "reference_latent": torch.randn(1, 16, 1, 4, 4, generator=g),
        "pose_maps": torch.rand(1, K, 5, 32, 32, generator=g),  # 4 (T - 1) + 1 frames at 8x the latent size
    }


def test_pose_encoder_maps_pixel_heatmaps_to_latent_size_and_starts_at_zero():
    encoder = PoseEncoder(K, 16)
    maps = torch.rand(2, K, 9, 32, 24)
    out = encoder(maps)
    assert out.shape == (2, 16, 3, 4, 3) and out.abs().max() == 0  # zero-initialised projection
    grouped = latent_groups(maps)
    assert torch.equal(grouped[:, :, 0], maps[:, :, 0])
    assert torch.allclose(grouped[:, :, 2], maps[:, :, 5:9].mean(dim=2))
    with pytest.raises(ValueError, match="4 n \\+ 1"):
        latent_groups(torch.rand(1, K, 4, 8, 8))


def test_refiner_velocity_shape_determinism_and_zero_prefix():
    refiner, inputs = _refiner(), _inputs()
    x = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([700.0])
    with torch.no_grad():
        v = refiner(x, t, **inputs)
        again = _refiner()(x, t, **inputs)
        other_lr = refiner(x, t, **{**inputs, "degraded": inputs["degraded"] + 1.0})
    assert v.shape == x.shape and torch.equal(v, again)
    assert v[:, :, 0].abs().max() == 0 and v[:, :, 1:].abs().max() > 0
    assert not torch.allclose(v[:, :, 1:], other_lr[:, :, 1:])  # the LR condition reaches the DiT


def test_pose_is_added_to_the_noisy_latent_after_the_prefix():
    refiner, inputs = _refiner(), _inputs()
    torch.nn.init.normal_(refiner.pose.out.weight, std=0.5, generator=torch.Generator().manual_seed(2))
    x = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    seen = []
    refiner.dit.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    with torch.no_grad():
        with_pose = refiner(x, torch.tensor([500.0]), **inputs)
        without = refiner(x, torch.tensor([500.0]), **{**inputs, "pose_maps": None})
    assert torch.equal(seen[0][:, :, 0], inputs["reference_latent"][:, :, 0])  # the prefix stays clean
    expected = x[:, :, 1:] + refiner.pose(inputs["pose_maps"])[:, :, 1:]
    assert torch.allclose(seen[0][:, :, 1:], expected) and torch.equal(seen[1][:, :, 1:], x[:, :, 1:])
    assert not torch.allclose(with_pose, without)


def test_sampled_prefix_latent_equals_the_reference_latent():
    refiner, inputs = _refiner(), _inputs()
    noise = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(9))
    out = refine_latents(refiner, noise, flow_timesteps(3, 5.0), **inputs)
    again = refine_latents(refiner, noise, flow_timesteps(3, 5.0), **inputs)
    assert torch.equal(out[:, :, :1], inputs["reference_latent"]) and torch.equal(out, again)
    assert not torch.allclose(out[:, :, 1:], noise[:, :, 1:])
    assert loss_weights(3).tolist() == [0.0, 1.0, 1.0]
