"""Procedural face renderer: identity + per-frame state -> anti-aliased RGB frames and ground-truth masks.

Everything is drawn from signed distance fields (``sdf.py``) in normalised coordinates, so the same face
renders at any resolution (64, 128, 256, ...). Frames are rendered in batches to bound memory.

Per-frame state:
- mouth opening in [0, 1] (0 = lips closed, 1 = wide open),
- head pose ``(dx, dy, roll, yaw)``: translation in normalised units ([-1, 1] spans the image), roll in
  radians, and yaw in [-1, 1] (features shift sideways, a cheap head turn),
- blink in [0, 1] (1 = eyelids fully closed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.synth import palette
from talkgen_core.synth.identity import FaceIdentity
from talkgen_core.synth.sdf import (
    capsule_sdf,
    circle_sdf,
    composite,
    coverage,
    ellipse_sdf,
    intersect,
    rotate,
    rounded_box_sdf,
    union,
)

HEAD_CENTRE_Y = -0.06  # head centre in the neutral pose
JAW_DROP = 0.06  # how far the chin moves down at full mouth opening
MOUTH_INNER_HEIGHT = 0.11  # half height of the mouth interior at full opening
YAW_FEATURE_SHIFT = 0.10  # sideways shift of eyes, nose and mouth at yaw = +-1
RENDER_BATCH = 32
# Normalised image region that contains every facial feature for all poses head_pose_track produces
# (motion.POSE_LIMIT: |dx| < 0.08, |dy| < 0.06, |roll| < 0.15, |yaw| < 0.8), with margin.
FEATURE_WINDOW_X = (-0.62, 0.62)
FEATURE_WINDOW_Y = (-0.5, 0.72)


@dataclass(frozen=True)
class RenderedFrames:
    frames: Tensor  # [T, 3, H, W] uint8
    face_mask: Tensor  # [T, H, W] float in [0, 1]: skin of the face (not hair, not neck)
    mouth_mask: Tensor  # [T, H, W] float in [0, 1]: lips and mouth interior, slightly dilated


def _rgb(colour: tuple[float, float, float]) -> Tensor:
    return torch.tensor(colour, dtype=torch.float32)


def _grid(size: int, batch: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``[batch, size, size]`` in [-1, 1]."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
    y, x = torch.meshgrid(c, c, indexing="ij")
    return x.expand(batch, size, size), y.expand(batch, size, size)


def _background(identity: FaceIdentity, x: Tensor, y: Tensor) -> Tensor:
    """Linear gradient between the two background colours: [B, 3, H, W]."""
    a = torch.tensor(identity.background_angle)
    w = ((x * torch.cos(a) + y * torch.sin(a)) * 0.5 + 0.5).clamp(0.0, 1.0).unsqueeze(1)
    ca = _rgb(identity.background_a_rgb).view(1, 3, 1, 1)
    cb = _rgb(identity.background_b_rgb).view(1, 3, 1, 1)
    return ca * (1.0 - w) + cb * w


def _feature_window(size: int) -> tuple[slice, slice]:
    """Rows and columns that can hold eyes, brows, nose and mouth under any pose the motion model makes.

    Features are drawn only inside this window, which is about a third of the image, to save time.
    """
    lo_x, hi_x = FEATURE_WINDOW_X
    lo_y, hi_y = FEATURE_WINDOW_Y
    to_px = lambda v: int(min(max((v + 1.0) * 0.5 * size, 0), size))  # noqa: E731
    return slice(to_px(lo_y), to_px(hi_y) + 1), slice(to_px(lo_x), to_px(hi_x) + 1)


def _draw_mouth(
    canvas: Tensor, fx: Tensor, hy: Tensor, op: Tensor, identity: FaceIdentity, px: float
) -> tuple[Tensor, Tensor]:
    """Lips (outer ellipse), the dark interior whose height is the opening, a lip line when nearly closed.

    canvas [B, 3, h, w]; fx, hy head-local feature coordinates [B, h, w]; op [B, 1, 1].
    Returns the new canvas and the (dilated) mouth coverage [B, h, w].
    """
    my = identity.mouth_y + 0.5 * JAW_DROP * op
    mw = identity.mouth_half_width * (1.0 - 0.15 * op)
    mcy = hy - my
    inner_ry = MOUTH_INNER_HEIGHT * op
    lips = ellipse_sdf(fx, mcy, mw, identity.lip_thickness + inner_ry)
    canvas = composite(canvas, _rgb(identity.lip_rgb), coverage(lips, px))
    interior = ellipse_sdf(fx, mcy, mw * 0.8, inner_ry)
    # A one-pixel ramp gives a zero-height shape half coverage; scale thin interiors by their true height.
    thin = (2.0 * inner_ry / px).clamp(max=1.0)
    canvas = composite(canvas, _rgb(palette.MOUTH_INTERIOR_RGB), coverage(interior, px) * thin)
    closed_weight = (1.0 - op / 0.08).clamp(0.0, 1.0)
    lip_line = capsule_sdf(fx, mcy, mw * 0.82, 0.006)
    line_rgb = _rgb(identity.lip_rgb) * palette.LIP_LINE_DARKEN
    canvas = composite(canvas, line_rgb, coverage(lip_line, px) * closed_weight)
    region = ellipse_sdf(fx, mcy, mw + 0.03, identity.lip_thickness + inner_ry + 0.03)
    return canvas, coverage(region, px)


def _draw_eyes(
    canvas: Tensor, fx: Tensor, hy: Tensor, blink: Tensor, identity: FaceIdentity, px: float
) -> Tensor:
    """Eye whites, irises, pupils, glints, eyelids that close with ``blink`` [B, 1, 1], lashes and brows."""
    skin, hair = _rgb(identity.skin_rgb), _rgb(identity.hair_rgb)
    ew = identity.eye_width
    eh = ew * 0.55
    lid_y = -eh + 2.0 * eh * blink
    for side in (-1.0, 1.0):
        ex, ey = fx - side * identity.eye_spacing, hy - identity.eye_y
        below_lid = lid_y - ey  # inside (negative) where the eye is not covered by the lid
        eye = ellipse_sdf(ex, ey, ew, eh)
        canvas = composite(canvas, _rgb(palette.EYE_WHITE_RGB), coverage(intersect(eye, below_lid), px))
        iris = intersect(circle_sdf(ex, ey, eh * 0.95), below_lid)
        canvas = composite(canvas, _rgb(identity.iris_rgb), coverage(iris, px))
        pupil = intersect(circle_sdf(ex, ey, eh * 0.45), below_lid)
        canvas = composite(canvas, _rgb(palette.PUPIL_RGB), coverage(pupil, px))
        glint = intersect(circle_sdf(ex + eh * 0.3, ey + eh * 0.3, eh * 0.16), below_lid)
        canvas = composite(canvas, _rgb(palette.EYE_WHITE_RGB), coverage(glint, px))
        lid = intersect(eye, -below_lid)
        canvas = composite(canvas, skin * 0.88, coverage(lid, px))
        lash = intersect(below_lid.abs() - 0.007, ellipse_sdf(ex, ey, ew + 0.01, eh + 0.01))
        canvas = composite(canvas, hair * 0.6, coverage(lash, px))
        bx, by = rotate(ex, ey + eh + 0.07, side * identity.brow_tilt)
        canvas = composite(canvas, hair, coverage(capsule_sdf(bx, by, ew * 0.95, 0.016), px))
    return canvas


def _render_batch(
    identity: FaceIdentity, opening: Tensor, pose: Tensor, blink: Tensor, size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """opening [B], pose [B, 4], blink [B] -> rgb [B, 3, H, W] in [0, 1], face mask, mouth mask [B, H, W]."""
    batch = opening.shape[0]
    px = 2.0 / size
    x, y = _grid(size, batch)
    col = lambda v: v.view(batch, 1, 1)  # noqa: E731 - per-frame scalar -> broadcastable [B, 1, 1]
    dx, dy, roll, yaw = (col(pose[:, i]) for i in range(4))
    op = col(opening)
    skin = _rgb(identity.skin_rgb)
    hair = _rgb(identity.hair_rgb)

    canvas = _background(identity, x, y).expand(batch, 3, size, size).clone()

    # Body: shoulders stay put, the neck follows the head half way.
    shoulders = ellipse_sdf(x, y - 1.28, 0.95, 0.52)
    canvas = composite(canvas, _rgb(identity.shirt_rgb), coverage(shoulders, px))
    neck = rounded_box_sdf(x - 0.5 * dx, y - 0.62 - 0.5 * dy, 0.16, 0.32, 0.08)
    canvas = composite(canvas, skin * 0.78, coverage(neck, px))

    # Head-local coordinates: translate, then undo the roll.
    hx, hy = rotate(x - dx, y - (HEAD_CENTRE_Y + dy), -roll)
    fw = identity.face_half_width
    upper, lower = identity.face_half_height_upper, identity.face_half_height_lower + JAW_DROP * op
    face_ry = torch.where(hy < 0, torch.full_like(hy, upper), lower.expand_as(hy))
    face = ellipse_sdf(hx, hy, fw, face_ry)

    # Hair behind the head.
    vol = identity.hair_volume
    if identity.hair_style != "cropped":
        back = ellipse_sdf(hx, hy + 0.04, fw + vol, upper + vol)
        if identity.hair_style == "long":
            drape = rounded_box_sdf(hx, hy - 0.30, fw + vol + 0.04, 0.62, 0.14)
            back = union(back, drape)
        canvas = composite(canvas, hair, coverage(back, px))

    # Ears, then the face with a slight darkening towards its rim.
    ears = union(ellipse_sdf(hx - fw, hy - 0.02, 0.07, 0.11), ellipse_sdf(hx + fw, hy - 0.02, 0.07, 0.11))
    canvas = composite(canvas, skin * 0.9, coverage(ears, px))
    rim = torch.sqrt((hx / fw) ** 2 + (hy / face_ry) ** 2)
    shade = 1.0 - 0.07 * ((rim - 0.65) / 0.35).clamp(0.0, 1.0)
    face_alpha = coverage(face, px)
    canvas = composite(canvas, skin.view(1, 3, 1, 1) * shade.unsqueeze(1), face_alpha)

    # Facial features, drawn inside the feature window only; they shift sideways with yaw.
    rows, cols = _feature_window(size)
    fx = (hx - YAW_FEATURE_SHIFT * yaw)[:, rows, cols]
    fy = hy[:, rows, cols]
    window = canvas[:, :, rows, cols]
    nose = ellipse_sdf(fx, fy - 0.14, 0.045, 0.022)
    window = composite(window, skin * 0.8, coverage(nose, px) * 0.8)
    window, mouth_window = _draw_mouth(window, fx, fy, op, identity, px)
    window = _draw_eyes(window, fx, fy, col(blink), identity, px)
    canvas[:, :, rows, cols] = window
    mouth_mask = torch.zeros(batch, size, size)
    mouth_mask[:, rows, cols] = mouth_window

    # Fringe: hair over the forehead, clipped to a slightly enlarged head outline.
    fringe_line = hy - identity.hairline_y + 0.04 * torch.cos(hx * 9.0)
    if identity.hair_style == "cropped":
        fringe_line = fringe_line - 0.1
    fringe = intersect(ellipse_sdf(hx, hy, fw + vol * 0.5, upper + vol * 0.5), fringe_line)
    fringe_alpha = coverage(fringe, px)
    canvas = composite(canvas, hair, fringe_alpha)

    face_mask = face_alpha * (1.0 - fringe_alpha)
    return canvas.clamp(0.0, 1.0), face_mask, mouth_mask


def render_frames(
    identity: FaceIdentity,
    mouth_opening: Tensor,  # [T] in [0, 1]
    head_pose: Tensor,  # [T, 4] (dx, dy, roll, yaw)
    blink: Tensor,  # [T] in [0, 1]
    size: int = 128,
) -> RenderedFrames:
    """Render ``T`` frames of one identity at ``size x size`` pixels."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    t = mouth_opening.shape[0]
    if head_pose.shape != (t, 4) or blink.shape != (t,):
        raise ValueError(
            f"per-frame state must share T: opening {tuple(mouth_opening.shape)}, "
            f"pose {tuple(head_pose.shape)} (want [T, 4]), blink {tuple(blink.shape)}"
        )
    frames, faces, mouths = [], [], []
    for start in range(0, t, RENDER_BATCH):
        sl = slice(start, start + RENDER_BATCH)
        rgb, face, mouth = _render_batch(
            identity, mouth_opening[sl].float(), head_pose[sl].float(), blink[sl].float(), size
        )
        frames.append((rgb * 255.0).round().to(torch.uint8))
        faces.append(face)
        mouths.append(mouth)
    return RenderedFrames(torch.cat(frames), torch.cat(faces), torch.cat(mouths))


def render_reference(identity: FaceIdentity, size: int = 128) -> Tensor:
    """The identity in its neutral pose, mouth closed and eyes open: ``[3, H, W]`` uint8."""
    zero = torch.zeros(1)
    return render_frames(identity, zero, torch.zeros(1, 4), zero, size).frames[0]
