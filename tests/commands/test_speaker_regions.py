"""Two or more voices from the command line: side-by-side columns by default, ``--masks`` and ``--boxes``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.pack_import import REPO_ROOT
from talkgen_core.commands import generate as generate_command

EXAMPLES = REPO_ROOT / "example_inputs"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    generate_command.add_arguments(parser)
    return parser.parse_args(["--image", "a.png", "--audio", "a.wav", "--out", "o.mp4", *argv])


def _half_mask(path: Path, side: str, size: tuple[int, int] = (40, 20)) -> Path:
    width, height = size
    pixels = np.zeros((height, width), np.uint8)
    if side == "left":
        pixels[:, : width // 2] = 255
    else:
        pixels[:, width // 2 :] = 255
    Image.fromarray(pixels, "L").save(path)
    return path


def test_no_regions_leaves_the_default_to_generate():
    assert generate_command._speaker_regions(_args("--audio2", "b.wav")) is None


def test_mask_files_become_one_region_per_speaker_in_order(tmp_path):
    right = _half_mask(tmp_path / "right.png", "right")
    left = _half_mask(tmp_path / "left.png", "left", size=(80, 40))  # another size: fitted to the first
    regions = generate_command._speaker_regions(_args("--audio2", "b.wav", "--masks", str(right), str(left)))
    masks = regions.at_size(16, 32)  # [P, H, W]
    assert masks.shape == (2, 16, 32)
    assert masks[0, :, 16:].mean() == 1 and masks[0, :, :16].sum() == 0  # first voice: the right half
    assert masks[1, :, :16].mean() == 1 and masks[1, :, 16:].sum() == 0


def test_boxes_are_percent_boxes():
    regions = generate_command._speaker_regions(_args("--audio2", "b.wav", "--boxes", "0,0,25,100; 50,0,100,50"))
    masks = regions.at_size(20, 40)
    assert masks[0].sum() == 20 * 10 and masks[1].sum() == 10 * 20


@pytest.mark.parametrize("flag, values", [("--masks", ["m.png"]), ("--boxes", ["0,0,50,100"])])
def test_a_region_count_unlike_the_voices_names_the_option(flag, values):
    with pytest.raises(ValueError, match=f"{flag} gives 1 region\\(s\\) for 2 speaker\\(s\\)"):
        generate_command._speaker_regions(_args("--audio2", "b.wav", flag, *values))


def test_two_voices_without_masks_get_side_by_side_columns(tmp_path, monkeypatch):
    from talkgen_core import pipeline
    from talkgen_core.models.dit import WanDiT

    seen: list[torch.Tensor] = []
    forward = WanDiT.forward

    def spy(self, *args, **kwargs):
        if kwargs.get("speaker_masks") is not None:
            seen.append(kwargs["speaker_masks"])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(WanDiT, "forward", spy)
    result = pipeline.generate(image=EXAMPLES / "two_people.png", audio=[EXAMPLES / "speech2.wav"] * 2,
                               out=tmp_path / "two.mp4", steps=1, chunk_frames=9, context_frames=1, seed=1)
    assert result.frames == 100 and seen
    masks = seen[0]  # [P, H, W] at the video's size
    width = masks.shape[-1]
    left, right = masks[0].sum(0) > 0, masks[1].sum(0) > 0  # which columns each speaker owns
    assert left[: width // 2].any() and not left[width // 2 :].any()
    assert right[width // 2 :].any() and not right[: width // 2].any()
