"""Where a synthetic person's eyes and mouth are in a frame, from the renderer's own coverage masks.

Boxes are half-open pixel rectangles (``regions.Box``); ``eye_pixels`` is the eyes' own pixels, for measures
that must not see what borders the eyes (``detail``).

The boxes come from rendering the people in their neutral pose (eyes open) with the mouth closed and fully
open, so the mouth box holds every opening the speech can make; measures then look at those pixels only,
wherever the face stands and however many people share the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.metrics.regions import Box, erode, mask_box
from talkgen_core.synth.identity import FaceIdentity
from talkgen_core.synth.layout import Placement
from talkgen_core.synth.render import PersonTrack, render_scene

MOUTH_MARGIN_PX = 2  # head motion and a model's imprecision move the mouth a little


@dataclass(frozen=True)
class FeatureBoxes:
    eyes: Box  # both eyes with their brows (coverage > 0.5)
    eye_pixels: Tensor  # [H, W] bool: eye coverage > 0.5 eroded by 1 px (a 3 x 3 stencil there sees only eye)
    mouth: Box  # lips and interior from closed to fully open (coverage > 0.5), grown by the margin
    closed_mouth: Box  # the closed mouth alone (coverage > 0.5), grown by the margin


def feature_boxes(
    people: Sequence[tuple[FaceIdentity, Placement]], height: int, width: int, mouth_margin: int = MOUTH_MARGIN_PX
) -> list[FeatureBoxes]:
    """One ``FeatureBoxes`` per person of a ``width x height`` scene (people drawn in order, as the renderer)."""
    opening = torch.tensor([0.0, 1.0])  # closed, then wide open
    tracks = [PersonTrack(identity, opening, torch.zeros(2, 4), torch.zeros(2), placement)
              for identity, placement in people]
    scene = render_scene(tracks, height, width)
    boxes = []
    for index in range(len(tracks)):
        eye_mask = scene.eye_mask[index, 0]
        eyes = mask_box(eye_mask, what=f"person {index + 1}'s eye mask")
        eye_pixels = erode((eye_mask > 0.5)[None], 1)[0]
        what = f"person {index + 1}'s mouth mask"
        mouth = mask_box(scene.mouth_mask[index].amax(dim=0), what=what)
        closed = mask_box(scene.mouth_mask[index, 0], what=what)
        boxes.append(FeatureBoxes(eyes, eye_pixels, mouth.grown(mouth_margin), closed.grown(mouth_margin)))
    return boxes
