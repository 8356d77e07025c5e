"""Colours the renderer reserves so that generated frames can be measured without a trained network.

The mouth interior is always the same saturated dark crimson (a blue-leaning red, away from browns), and
no other part of any identity (skin, lips, hair, eyes, clothes, background) comes near it in CIELAB
(delta E > 24, checked by a test), so counting pixels of that colour measures mouth opening. Backgrounds
and clothes avoid red and magenta hues for the same reason.
"""

from __future__ import annotations

# sRGB in [0, 1].
MOUTH_INTERIOR_RGB: tuple[float, float, float] = (0.45, 0.0, 0.22)  # dark crimson, L*a*b* ~ (23, 47, 1)
LIP_LINE_DARKEN = 0.62  # closed-mouth line = lip colour times this
PUPIL_RGB: tuple[float, float, float] = (0.04, 0.04, 0.05)
EYE_WHITE_RGB: tuple[float, float, float] = (0.95, 0.94, 0.92)

# Ends of the skin-tone ramp an identity interpolates along (light to deep).
SKIN_LIGHT_RGB: tuple[float, float, float] = (0.96, 0.80, 0.68)
SKIN_DEEP_RGB: tuple[float, float, float] = (0.36, 0.23, 0.16)
LIP_ROSE_RGB: tuple[float, float, float] = (0.78, 0.42, 0.44)

HAIR_RGB: tuple[tuple[float, float, float], ...] = (
    (0.08, 0.07, 0.06),  # black
    (0.24, 0.15, 0.09),  # dark brown
    (0.45, 0.31, 0.17),  # brown
    (0.84, 0.72, 0.46),  # blond
    (0.70, 0.70, 0.69),  # grey
    (0.55, 0.30, 0.15),  # auburn
)

IRIS_RGB: tuple[tuple[float, float, float], ...] = (
    (0.25, 0.45, 0.70),  # blue
    (0.30, 0.50, 0.30),  # green
    (0.35, 0.22, 0.12),  # brown
    (0.45, 0.48, 0.50),  # grey
)

# Hue window (degrees) for backgrounds and clothes: yellow-green through cyan to blue, never red or magenta.
SAFE_HUE_RANGE_DEG: tuple[float, float] = (70.0, 265.0)
