"""Where a person stands in the frame: a centre and a scale in scene coordinates, and how training draws them.

Scene coordinates: y runs over the frame's height from -1 (top) to 1 (bottom); x uses the same unit, so a
``W x H`` frame spans ``x`` in ``[-W / H, W / H]``. A person is drawn in person-local coordinates
``((x - cx) / scale, (y - cy) / scale)``: ``Placement()`` (centre 0, scale 1) is the portrait the first demo
model was trained on, so those frames are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Training draws for one person alone: faces from a little larger than the portrait to about half its size,
# anywhere the face stays inside the frame.
SOLO_SCALE = (0.55, 1.1)
SOLO_CENTRE_SHARE = 0.8  # the share of the room left by the scale that the centre may use
PORTRAIT_SHARE = 0.35  # share of solo clips drawn as the plain centred portrait (what most users give)
# Two people side by side on a 2:1 frame: each at about the portrait's size, with varied spacing.
PAIR_SCALE = (0.72, 1.0)
PAIR_GAP = (-0.1, 0.35)  # extra space between the two centres, scene units beyond touching shoulders


@dataclass(frozen=True)
class Placement:
    cx: float = 0.0
    cy: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"placement scale must be positive, got {self.scale}")

    def to_scene(self, x: float, y: float) -> tuple[float, float]:
        """A person-local point -> scene coordinates."""
        return self.cx + self.scale * x, self.cy + self.scale * y


def sample_solo_placement(rng: np.random.Generator) -> Placement:
    """A face somewhere in a square frame: the centred portrait in ``PORTRAIT_SHARE`` of draws."""
    if rng.random() < PORTRAIT_SHARE:
        return Placement()
    scale = float(rng.uniform(*SOLO_SCALE))
    room = max(1.0 - 0.62 * scale, 0.0) * SOLO_CENTRE_SHARE  # the face's half width is about 0.62 x scale
    return Placement(float(rng.uniform(-room, room)), float(rng.uniform(-room, room) * 0.6 + 0.2 * (1.0 - scale)),
                     scale)


def sample_pair_placements(rng: np.random.Generator, aspect: float = 2.0) -> tuple[Placement, Placement]:
    """Two people side by side on a frame ``aspect`` times as wide as high (speaker 1 on the left)."""
    scales = rng.uniform(*PAIR_SCALE, size=2)
    half = 0.5 * (0.95 * scales.sum() + rng.uniform(*PAIR_GAP))  # each centre's distance from the middle
    half = float(min(half, aspect - 0.6 * float(scales.max())))
    shift = float(rng.uniform(-1.0, 1.0) * max(aspect - half - 0.6 * float(scales.max()), 0.0) * 0.5)
    ys = rng.uniform(-0.05, 0.15, size=2) + 0.25 * (1.0 - scales)
    return (Placement(shift - half, float(ys[0]), float(scales[0])),
            Placement(shift + half, float(ys[1]), float(scales[1])))


def columns_placements(count: int, aspect: float) -> tuple[Placement, ...]:
    """``count`` people centred in equal columns of a frame ``aspect`` wide (the default speaker layout)."""
    width = 2.0 * aspect / count
    scale = min(1.0, width / 2.0)
    return tuple(Placement(-aspect + width * (i + 0.5), 0.0, scale) for i in range(count))
