"""RefinerDiT on the tiny DiT: the condition's layout, pose cells, determinism, and pose added after the prefix."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.models.dit import build_dit
from talkgen_core.refine.degrade import degrade
from talkgen_core.refine.model import PoseEncoder, RefinerDiT, latent_groups, pose_cells, prefixed_audio

K = 8  # landmarks


def _refiner(seed: int = 0) -> RefinerDiT:
    torch.manual_seed(seed)  # the pose encoder's hidden layers
    return RefinerDiT(build_dit("tiny", seed=seed), landmarks=K)


def _inputs(seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    lr = torch.randn(1, 16, 2, 2, 2, generator=g)
    return {
        "reference_latent": torch.randn(1, 16, 1, 4, 4, generator=g),
        "degraded": degrade(lr, 2, 0.2, torch.Generator().manual_seed(3)),  # [1, 16, 2, 4, 4]
        "pose_maps": torch.rand(1, K, 5, 32, 32, generator=g),  # 4 (T - 1) + 1 frames at 8x the latent size
    }


def test_pose_cells_fold_per_latent_means_to_latent_size_and_the_encoder_starts_at_zero():
    maps = torch.rand(2, K, 9, 32, 24)
    grouped = latent_groups(maps)
    assert torch.equal(grouped[:, :, 0], maps[:, :, 0])
    assert torch.allclose(grouped[:, :, 2], maps[:, :, 5:9].mean(dim=2))
    cells = pose_cells(maps)
    assert cells.shape == (2, K * 64, 3, 4, 3)
    # cell (1, 2) of latent 2, landmark 3: the 8 x 8 pixels at rows 8..15, columns 16..23, space to depth
    assert torch.allclose(cells[0, 3 * 64 : 4 * 64, 2, 1, 2], grouped[0, 3, 2, 8:16, 16:24].flatten())
    encoder = PoseEncoder(K * 64, 16)
    assert encoder(cells).shape == (2, 16, 3, 4, 3) and encoder(cells).abs().max() == 0
    torch.nn.init.normal_(encoder.out.weight)
    assert encoder(torch.zeros_like(cells)).abs().max() == 0  # no biases: no pose adds nothing
    with pytest.raises(ValueError, match="4 n \\+ 1"):
        latent_groups(torch.rand(1, K, 4, 8, 8))


def test_condition_marks_the_prefix_and_holds_reference_degraded_latents_and_pose():
    refiner, inputs = _refiner(), _inputs()
    cond = refiner.condition(**inputs)
    assert cond.shape == (1, 4 + 16 + K * 64, 3, 4, 4)
    assert cond[:, :4, 0].min() == 1 and cond[:, :4, 1:].abs().max() == 0
    assert torch.equal(cond[:, 4:20, :1], inputs["reference_latent"])
    assert torch.equal(cond[:, 4:20, 1:], inputs["degraded"])
    assert cond[:, 20:, 0].abs().max() == 0 and torch.equal(cond[:, 20:, 1:], pose_cells(inputs["pose_maps"]))
    without_pose = refiner.condition(inputs["reference_latent"], inputs["degraded"])
    assert without_pose[:, 20:].abs().max() == 0 and torch.equal(without_pose[:, :20], cond[:, :20])
    with pytest.raises(ValueError, match="reference latent"):
        refiner.condition(inputs["reference_latent"][:, :, :, :2], inputs["degraded"])
    with pytest.raises(ValueError, match="do not cover"):
        refiner.condition(inputs["reference_latent"], inputs["degraded"], inputs["pose_maps"][:, :, :1])


def test_refiner_velocity_is_deterministic_and_reads_the_low_resolution_condition():
    refiner, inputs = _refiner(), _inputs()
    cond = refiner.condition(**inputs)
    x = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    t, text = torch.tensor([700.0]), torch.zeros(1, 1, 32)
    with torch.no_grad():
        v = refiner(x, t, text, cond)
        again = _refiner()(x, t, text, cond)
        other = refiner(x, t, text, refiner.condition(inputs["reference_latent"], inputs["degraded"] + 1.0,
                                                      inputs["pose_maps"]))
    assert v.shape == x.shape and torch.equal(v, again)
    assert not torch.allclose(v[:, :, 1:], other[:, :, 1:])
    with pytest.raises(ValueError, match="build it with condition"):
        refiner(x, t, text, cond[:, :20])


def test_pose_is_added_to_the_noisy_latent_after_the_prefix():
    refiner, inputs = _refiner(), _inputs()
    torch.nn.init.normal_(refiner.pose.out.weight, std=0.5, generator=torch.Generator().manual_seed(2))
    cond = refiner.condition(**inputs)
    x = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    seen = []
    refiner.dit.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    with torch.no_grad():
        refiner(x, torch.tensor([500.0]), torch.zeros(1, 1, 32), cond)
    added = seen[0] - x
    assert added[:, :, 0].abs().max() == 0 and added[:, :, 1:].abs().max() > 0
    assert torch.allclose(added, refiner.pose(cond[:, 20:]), atol=1e-6)
    assert refiner.blocks is refiner.dit.blocks and refiner.config is refiner.dit.config


def test_prefixed_audio_puts_four_null_frames_first():
    audio = torch.rand(1, 2, 9, 5, 3, 4)
    out = prefixed_audio(audio)
    assert out.shape == (1, 2, 13, 5, 3, 4) and out[:, :, :4].abs().max() == 0 and torch.equal(out[:, :, 4:], audio)
