"""Face identities: the parameters that make one synthetic person look different from another.

An identity is drawn from an integer seed. Seeds below ``FIRST_TRAINING_IDENTITY_SEED`` are held out:
training code draws identities from ``training_identity_seed(i)`` only, so example inputs and evaluation
faces (``EXAMPLE_IDENTITY_SEED``) are never seen during training.
"""

from __future__ import annotations

import colorsys
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from talkgen_core.synth import palette

RGB = tuple[float, float, float]

FIRST_TRAINING_IDENTITY_SEED = 1000
EXAMPLE_IDENTITY_SEED = 7

HAIR_STYLES = ("short", "long", "cropped")


def training_identity_seed(index: int) -> int:
    """Identity seed for the ``index``-th training identity (never a held-out seed)."""
    if index < 0:
        raise ValueError(f"identity index must be >= 0, got {index}")
    return FIRST_TRAINING_IDENTITY_SEED + index


def is_held_out_identity(seed: int) -> bool:
    """Whether an identity seed is reserved for evaluation and examples."""
    return 0 <= seed < FIRST_TRAINING_IDENTITY_SEED


@dataclass(frozen=True)
class FaceIdentity:
    """Everything that stays fixed for one person. Lengths are in normalised image units ([-1, 1] wide)."""

    seed: int
    skin_rgb: RGB
    lip_rgb: RGB
    hair_rgb: RGB
    iris_rgb: RGB
    shirt_rgb: RGB
    background_a_rgb: RGB
    background_b_rgb: RGB
    background_angle: float  # radians; direction of the background gradient from colour a to colour b
    face_half_width: float
    face_half_height_upper: float  # forehead part of the head outline
    face_half_height_lower: float  # jaw part of the head outline
    eye_spacing: float  # horizontal distance of each eye from the face centre line
    eye_y: float
    eye_width: float  # half width of the eye opening
    brow_tilt: float  # radians
    mouth_y: float
    mouth_half_width: float
    lip_thickness: float
    hair_style: str
    hair_volume: float  # how far the hair stands off the head
    hairline_y: float  # where the fringe ends on the forehead (head-local y)

    def as_vector(self) -> torch.Tensor:
        """Numeric parameters as one float vector ``[35]``: colours, then geometry, then the style index."""
        colours = (
            self.skin_rgb + self.lip_rgb + self.hair_rgb + self.iris_rgb + self.shirt_rgb
            + self.background_a_rgb + self.background_b_rgb
        )
        geometry = (
            self.background_angle, self.face_half_width, self.face_half_height_upper,
            self.face_half_height_lower, self.eye_spacing, self.eye_y, self.eye_width, self.brow_tilt,
            self.mouth_y, self.mouth_half_width, self.lip_thickness, self.hair_volume, self.hairline_y,
        )
        style = (float(HAIR_STYLES.index(self.hair_style)),)
        return torch.tensor(colours + geometry + style, dtype=torch.float32)


def _mix(a: RGB, b: RGB, w: float) -> RGB:
    return (a[0] + (b[0] - a[0]) * w, a[1] + (b[1] - a[1]) * w, a[2] + (b[2] - a[2]) * w)


def _jitter(rgb: RGB, rng: np.random.Generator, amount: float) -> RGB:
    """Vary brightness freely but hue only a little (independent channel noise is a third of ``amount``)."""
    brightness = 1.0 + rng.normal(0.0, 3.0 * amount)
    noisy = np.clip(np.asarray(rgb) * brightness + rng.normal(0.0, amount / 3.0, 3), 0.0, 1.0)
    return (float(noisy[0]), float(noisy[1]), float(noisy[2]))


def _safe_hue_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> RGB:
    """A colour whose hue stays out of the reds (or a grey), so it never resembles the mouth interior."""
    lo, hi = palette.SAFE_HUE_RANGE_DEG
    hue = rng.uniform(lo, hi) / 360.0
    s = rng.uniform(*sat) if rng.random() > 0.2 else rng.uniform(0.0, 0.06)
    r, g, b = colorsys.hsv_to_rgb(hue, s, rng.uniform(*val))
    return (r, g, b)


def sample_identity(seed: int) -> FaceIdentity:
    """Draw one identity deterministically from ``seed``."""
    rng = np.random.default_rng([seed, 0x1DE7])
    skin = _jitter(_mix(palette.SKIN_LIGHT_RGB, palette.SKIN_DEEP_RGB, float(rng.uniform())), rng, 0.02)
    shaded_skin = (skin[0] * 0.85, skin[1] * 0.85, skin[2] * 0.85)
    lip = _jitter(_mix(shaded_skin, palette.LIP_ROSE_RGB, float(rng.uniform(0.3, 0.45))), rng, 0.015)
    hair = _jitter(palette.HAIR_RGB[int(rng.integers(len(palette.HAIR_RGB)))], rng, 0.03)
    iris = _jitter(palette.IRIS_RGB[int(rng.integers(len(palette.IRIS_RGB)))], rng, 0.03)
    shirt = _safe_hue_colour(rng, (0.25, 0.7), (0.25, 0.85))
    bg_a = _safe_hue_colour(rng, (0.1, 0.5), (0.35, 0.95))
    if rng.random() < 0.7:  # a darker shade of the same colour
        shade = rng.uniform(0.6, 1.0)
        bg_b = (bg_a[0] * shade, bg_a[1] * shade, bg_a[2] * shade)
    else:
        bg_b = _safe_hue_colour(rng, (0.1, 0.5), (0.35, 0.95))
    face_w = float(rng.uniform(0.34, 0.44))
    return FaceIdentity(
        seed=seed,
        skin_rgb=skin,
        lip_rgb=lip,
        hair_rgb=hair,
        iris_rgb=iris,
        shirt_rgb=shirt,
        background_a_rgb=bg_a,
        background_b_rgb=bg_b,
        background_angle=float(rng.uniform(0.0, 2.0 * np.pi)),
        face_half_width=face_w,
        face_half_height_upper=float(rng.uniform(0.46, 0.54)),
        face_half_height_lower=float(rng.uniform(0.50, 0.62)),
        eye_spacing=float(rng.uniform(0.36, 0.46) * face_w),
        eye_y=float(rng.uniform(-0.08, 0.0)),
        eye_width=float(rng.uniform(0.065, 0.09)),
        brow_tilt=float(rng.uniform(-0.15, 0.2)),
        mouth_y=float(rng.uniform(0.27, 0.34)),
        mouth_half_width=float(rng.uniform(0.11, 0.16)),
        lip_thickness=float(rng.uniform(0.028, 0.042)),
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        hair_volume=float(rng.uniform(0.04, 0.12)),
        hairline_y=float(rng.uniform(-0.36, -0.24)),
    )


def with_changes(identity: FaceIdentity, **changes: object) -> FaceIdentity:
    """A copy of ``identity`` with some fields replaced (for tests and ablations)."""
    return dataclasses.replace(identity, **changes)  # type: ignore[arg-type]
