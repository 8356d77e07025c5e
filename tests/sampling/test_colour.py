"""Lab conversion and colour matching towards the reference."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.sampling.colour import ColourTarget, lab_statistics, lab_to_rgb, match_colours, rgb_to_lab


def test_known_lab_values():
    rgb = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)  # white, red, black
    lab = rgb_to_lab(rgb)
    torch.testing.assert_close(lab[:, 0], torch.tensor([100.0, 0.0, 0.0], dtype=torch.float64), atol=0.02, rtol=0)
    torch.testing.assert_close(lab[:, 1], torch.tensor([53.24, 80.09, 67.20], dtype=torch.float64), atol=0.05, rtol=0)
    torch.testing.assert_close(lab[:, 2], torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)


def test_round_trip():
    rgb = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-6, rtol=0)


def test_matching_moves_statistics_to_the_reference():
    g = torch.Generator().manual_seed(1)
    reference = torch.rand(3, 24, 24, generator=g) * 1.2 - 0.6
    frames = (torch.rand(1, 3, 2, 16, 16, generator=g) * 0.8 - 0.2).clamp(-1, 1)  # brighter, less contrast
    full = match_colours(frames, reference, strength=1.0)
    ref_mean, ref_std = lab_statistics(reference)
    for t in range(2):
        mean, std = lab_statistics(full[0, :, t])
        torch.testing.assert_close(mean, ref_mean, atol=1.0, rtol=0)
        torch.testing.assert_close(std, ref_std, atol=1.5, rtol=0)
    assert torch.equal(match_colours(frames, reference, 0.0), frames)
    half = match_colours(frames, reference, 0.5)
    torch.testing.assert_close(half, (frames + full) / 2, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="strength"):
        match_colours(frames, reference, 1.5)


def test_precomputed_target_gives_the_same_frames_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    reference = torch.rand(3, 20, 28, generator=g) * 2 - 1
    target = ColourTarget.of(reference)
    for seed in range(3):  # one target serves every chunk
        frames = torch.rand(2, 3, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.9
        once = match_colours(frames, target, 0.7)
        assert torch.equal(once, match_colours(frames, reference, 0.7))
        assert (once - frames).abs().max() > 1e-2
