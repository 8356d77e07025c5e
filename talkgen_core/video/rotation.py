"""A video's display rotation: how a player turns the stored frames before showing them.

Phones store portrait video as landscape frames plus a display matrix (or, in files from older muxers, a
``rotate`` tag) that says how to turn them. Decoders hand out the stored frames, so a reader that ignores
the rotation dubs a portrait video sideways. Only quarter turns occur in practice; other angles are rounded
to the nearest quarter turn, as ffmpeg's own auto-rotation does.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np

FIXED_POINT = float(1 << 16)  # the display matrix's a, b, c, d entries are 16.16 fixed point


def _matrix_rotation(matrix: bytes) -> Optional[float]:
    """Counter-clockwise degrees of a 3x3 int32 display matrix, as ``av_display_rotation_get``."""
    if len(matrix) < 36:
        return None
    m = np.frombuffer(matrix[:36], dtype="<i4").astype(np.float64) / FIXED_POINT
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return None
    return -math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))


def frame_rotation(frame: Any, stream_metadata: Mapping[str, str]) -> float:
    """Counter-clockwise degrees a player turns ``frame`` (a PyAV ``VideoFrame``) by; 0 when untagged.

    Sources, first found wins: the frame's display matrix (``frame.rotation`` on PyAV >= 13.1, else the raw
    side data), then the stream's ``rotate`` tag (clockwise degrees, hence the sign).
    """
    rotation = getattr(frame, "rotation", None)
    if rotation is not None:
        return float(rotation)
    for side_data in getattr(frame, "side_data", ()):
        if "DISPLAYMATRIX" in str(getattr(side_data, "type", "")).upper():
            angle = _matrix_rotation(bytes(side_data))
            if angle is not None:
                return angle
    try:
        return -float(stream_metadata.get("rotate", 0))
    except ValueError:
        return 0.0


def quarter_turns(degrees: float) -> int:
    """Counter-clockwise degrees -> quarter turns in 0..3."""
    return int(round(degrees / 90.0)) % 4


def upright(image: np.ndarray, turns: int) -> np.ndarray:
    """Turn a stored ``[H, W, C]`` frame counter-clockwise by ``turns`` quarter turns (what a player shows)."""
    return image if turns == 0 else np.ascontiguousarray(np.rot90(image, turns))
