"""Ground-truth landmarks of the procedural faces: where the renderer draws each feature, in pixels.

The positions come from the same geometry as :mod:`talkgen_core.synth.render` (its constants and the
identity's feature sizes): a feature point in the face's feature coordinates is moved by the yaw shift, turned
by the roll, translated by the head pose and placed by the person's :class:`Placement`. Pixel coordinates put
the centre of pixel ``(row, col)`` at ``(x, y) = (col, row)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from talkgen_core.synth.render import HEAD_CENTRE_Y, JAW_DROP, MOUTH_INNER_HEIGHT, YAW_FEATURE_SHIFT, PersonTrack

# image-left / image-right as the frame shows them (the renderer's side -1 / +1)
LANDMARKS: tuple[str, ...] = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right", "upper_lip",
                              "lower_lip", "chin")
NOSE_Y = 0.14  # the renderer's nose ellipse centre below the head centre (feature coordinates)


def _feature_points(person: PersonTrack) -> tuple[Tensor, Tensor, Tensor]:
    """Per frame, each landmark in feature coordinates ``(fx, fy)`` [T, K], and whether it moves with yaw [K]."""
    ident = person.identity
    op = person.mouth_opening.float()[:, None]  # [T, 1]
    my = ident.mouth_y + 0.5 * JAW_DROP * op
    mw = ident.mouth_half_width * (1.0 - 0.15 * op)
    lip = MOUTH_INNER_HEIGHT * op + 0.5 * ident.lip_thickness  # centre of each lip from the mouth centre line
    chin = ident.face_half_height_lower + JAW_DROP * op
    zero = torch.zeros_like(op)
    fx = torch.cat([zero - ident.eye_spacing, zero + ident.eye_spacing, zero, -mw, mw, zero, zero, zero], dim=1)
    fy = torch.cat([zero + ident.eye_y, zero + ident.eye_y, zero + NOSE_Y, my, my, my - lip, my + lip, chin], dim=1)
    with_yaw = torch.tensor([1.0] * 7 + [0.0])  # the chin is on the face outline, which does not shift with yaw
    return fx, fy, with_yaw


def person_landmarks(person: PersonTrack, height: int, width: int) -> Tensor:
    """The :data:`LANDMARKS` of every frame of ``person`` in a ``width x height`` frame: ``[T, K, 2]`` (x, y)."""
    pose = person.head_pose.float()
    dx, dy, roll, yaw = (pose[:, i : i + 1] for i in range(4))  # [T, 1]
    fx, fy, with_yaw = _feature_points(person)
    hx, hy = fx + YAW_FEATURE_SHIFT * yaw * with_yaw, fy
    c, s = torch.cos(roll), torch.sin(roll)  # undo the renderer's rotate(..., -roll)
    u, v = c * hx - s * hy, s * hx + c * hy
    place = person.placement
    x = place.cx + place.scale * (u + dx)
    y = place.cy + place.scale * (v + HEAD_CENTRE_Y + dy)
    half = 0.5 * height  # scene units -> pixels (one scene unit is half the frame height)
    return torch.stack([(x + width / height) * half - 0.5, (y + 1.0) * half - 0.5], dim=-1)


__all__ = ["LANDMARKS", "person_landmarks"]
