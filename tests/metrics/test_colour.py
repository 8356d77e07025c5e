import pytest
import torch

from talkgen_core.metrics.colour import delta_e76, srgb_to_lab
from talkgen_core.metrics.frames import to_unit_rgb


@pytest.mark.parametrize(
    ("rgb", "lab"),
    [
        ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
        ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
        ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
        ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
        ((0.5, 0.5, 0.5), (53.39, 0.0, 0.0)),
    ],
)
def test_srgb_to_lab_matches_published_values(rgb, lab):
    out = srgb_to_lab(torch.tensor(rgb), channel_dim=-1)
    assert out.tolist() == pytest.approx(lab, abs=0.05)


def test_image_layout_and_delta_e():
    img = torch.rand(2, 3, 5, 7)
    lab = srgb_to_lab(img)
    assert lab.shape == img.shape
    assert torch.allclose(lab[1, :, 2, 3], srgb_to_lab(img[1, :, 2, 3], channel_dim=0))
    assert delta_e76(lab, lab).abs().max().item() == 0.0
    shifted = lab.clone()
    shifted[:, 0] += 3.0
    shifted[:, 1] += 4.0
    assert torch.allclose(delta_e76(lab, shifted), torch.full((2, 5, 7), 5.0))


def test_frame_conventions():
    u8 = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 3, 1, 1)
    assert to_unit_rgb(u8).flatten().tolist() == pytest.approx([0.0, 1.0, 0.2])
    f = torch.tensor([-1.0, 1.0, 0.0]).view(3, 1, 1)
    assert to_unit_rgb(f).flatten().tolist() == pytest.approx([0.0, 1.0, 0.5])
    with pytest.raises(ValueError):
        to_unit_rgb(torch.zeros(2, 4, 4, 3))
