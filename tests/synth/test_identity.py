import torch

from talkgen_core.metrics.colour import delta_e76, srgb_to_lab
from talkgen_core.synth import palette
from talkgen_core.synth.identity import (
    EXAMPLE_IDENTITY_SEED,
    is_held_out_identity,
    sample_identity,
    training_identity_seed,
)


def test_same_seed_same_identity_and_different_seeds_differ():
    assert sample_identity(1234) == sample_identity(1234)
    vectors = torch.stack([sample_identity(s).as_vector() for s in range(1000, 1020)])
    assert vectors.shape == (20, 35)
    assert torch.unique(vectors, dim=0).shape[0] == 20


def test_training_seeds_never_hit_the_held_out_range():
    assert is_held_out_identity(EXAMPLE_IDENTITY_SEED)
    assert not any(is_held_out_identity(training_identity_seed(i)) for i in range(0, 5000, 7))


def test_no_identity_colour_resembles_the_mouth_interior():
    interior = srgb_to_lab(torch.tensor(palette.MOUTH_INTERIOR_RGB), channel_dim=-1)
    worst = float("inf")
    for seed in range(1000, 1300):
        ident = sample_identity(seed)
        colours = [
            ident.skin_rgb, ident.lip_rgb, ident.hair_rgb, ident.iris_rgb, ident.shirt_rgb,
            ident.background_a_rgb, ident.background_b_rgb,
            tuple(c * palette.LIP_LINE_DARKEN for c in ident.lip_rgb),
            tuple(c * 0.6 for c in ident.hair_rgb),  # lash colour
        ]
        lab = srgb_to_lab(torch.tensor(colours), channel_dim=-1)
        worst = min(worst, float(delta_e76(lab, interior, channel_dim=-1).min()))
    assert worst > 24.0, worst
