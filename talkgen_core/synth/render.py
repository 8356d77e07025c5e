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

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.synth import palette
from talkgen_core.synth.identity import FaceIdentity
from talkgen_core.synth.layout import Placement
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
    eye_mask: Tensor  # [T, H, W] float in [0, 1]: both eyes with their brows, slightly dilated


@dataclass(frozen=True)
class PersonTrack:
    """One person of a scene: who, where, and the per-frame state."""

    identity: FaceIdentity
    mouth_opening: Tensor  # [T] in [0, 1]
    head_pose: Tensor  # [T, 4] (dx, dy, roll, yaw)
    blink: Tensor  # [T] in [0, 1]
    placement: Placement = Placement()


@dataclass(frozen=True)
class RenderedScene:
    frames: Tensor  # [T, 3, H, W] uint8
    face_mask: Tensor  # [P, T, H, W] float, per person (a later person covers an earlier one)
    mouth_mask: Tensor  # [P, T, H, W]
    eye_mask: Tensor  # [P, T, H, W]


def _rgb(colour: tuple[float, float, float]) -> Tensor:
    return torch.tensor(colour, dtype=torch.float32)


def _grid(height: int, width: int, batch: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre scene coordinates ``[batch, H, W]``: y in [-1, 1], x in [-W / H, W / H]."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2.0 - 1.0
    xs = ((torch.arange(width, dtype=torch.float32) + 0.5) / height * 2.0) - width / height
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x.expand(batch, height, width), y.expand(batch, height, width)


def _background(identity: FaceIdentity, x: Tensor, y: Tensor) -> Tensor:
    """Linear gradient between the two background colours: [B, 3, H, W]."""
    a = torch.tensor(identity.background_angle)
    w = ((x * torch.cos(a) + y * torch.sin(a)) * 0.5 + 0.5).clamp(0.0, 1.0).unsqueeze(1)
    ca = _rgb(identity.background_a_rgb).view(1, 3, 1, 1)
    cb = _rgb(identity.background_b_rgb).view(1, 3, 1, 1)
    return ca * (1.0 - w) + cb * w


def _feature_window(height: int, width: int, placement: Placement) -> tuple[slice, slice]:
    """Rows and columns that can hold eyes, brows, nose and mouth under any pose the motion model makes.

    Features are drawn only inside this window, which is about a third of the person's box, to save time.
    """
    (x0, y0), (x1, y1) = (placement.to_scene(FEATURE_WINDOW_X[i], FEATURE_WINDOW_Y[i]) for i in (0, 1))
    to_row = lambda v: int(min(max((v + 1.0) * 0.5 * height, 0), height))  # noqa: E731
    to_col = lambda v: int(min(max((v + width / height) * 0.5 * height, 0), width))  # noqa: E731
    return slice(to_row(y0), to_row(y1) + 1), slice(to_col(x0), to_col(x1) + 1)


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
) -> tuple[Tensor, Tensor]:
    """Eye whites, irises, pupils, glints, eyelids that close with ``blink`` [B, 1, 1], lashes and brows.

    Returns the new canvas and the coverage [B, h, w] of both eyes with their brows (slightly dilated)."""
    skin, hair = _rgb(identity.skin_rgb), _rgb(identity.hair_rgb)
    ew = identity.eye_width
    eh = ew * 0.55
    lid_y = -eh + 2.0 * eh * blink
    region = torch.zeros_like(fx)
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
        box = rounded_box_sdf(ex, ey + 0.5 * (eh + 0.07) * 0.9, ew + 0.03, 0.5 * (eh + 0.07) + eh + 0.03, 0.02)
        region = torch.maximum(region, coverage(box, px))
    return canvas, region


def _draw_person(
    canvas: Tensor, x: Tensor, y: Tensor, person: PersonTrack, sl: slice, px: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Draw frames ``sl`` of one person onto canvas [B, 3, H, W] (scene coordinates x, y [B, H, W]).

    Returns the canvas and the person's face, mouth and eye coverage [B, H, W].
    """
    identity, place = person.identity, person.placement
    opening, pose, blink = person.mouth_opening[sl].float(), person.head_pose[sl].float(), person.blink[sl].float()
    batch, _, height, width = canvas.shape
    # person-local coordinates: one local unit is ``scale`` scene units, so a pixel is px / scale wide there
    x, y, px = (x - place.cx) / place.scale, (y - place.cy) / place.scale, px / place.scale
    col = lambda v: v.view(batch, 1, 1)  # noqa: E731 - per-frame scalar -> broadcastable [B, 1, 1]
    dx, dy, roll, yaw = (col(pose[:, i]) for i in range(4))
    op = col(opening)
    skin = _rgb(identity.skin_rgb)
    hair = _rgb(identity.hair_rgb)

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
    rows, cols = _feature_window(height, width, place)
    fx = (hx - YAW_FEATURE_SHIFT * yaw)[:, rows, cols]
    fy = hy[:, rows, cols]
    window = canvas[:, :, rows, cols]
    nose = ellipse_sdf(fx, fy - 0.14, 0.045, 0.022)
    window = composite(window, skin * 0.8, coverage(nose, px) * 0.8)
    window, mouth_window = _draw_mouth(window, fx, fy, op, identity, px)
    window, eye_window = _draw_eyes(window, fx, fy, col(blink), identity, px)
    canvas[:, :, rows, cols] = window
    mouth_mask = torch.zeros(batch, height, width)
    mouth_mask[:, rows, cols] = mouth_window
    eye_mask = torch.zeros(batch, height, width)
    eye_mask[:, rows, cols] = eye_window

    # Fringe: hair over the forehead, clipped to a slightly enlarged head outline.
    fringe_line = hy - identity.hairline_y + 0.04 * torch.cos(hx * 9.0)
    if identity.hair_style == "cropped":
        fringe_line = fringe_line - 0.1
    fringe = intersect(ellipse_sdf(hx, hy, fw + vol * 0.5, upper + vol * 0.5), fringe_line)
    fringe_alpha = coverage(fringe, px)
    canvas = composite(canvas, hair, fringe_alpha)
    return canvas, face_alpha * (1.0 - fringe_alpha), mouth_mask, eye_mask * (1.0 - fringe_alpha)


def render_scene(
    people: Sequence[PersonTrack], height: int, width: int, background: FaceIdentity | None = None
) -> RenderedScene:
    """Render ``T`` frames of one or more people (drawn in order) over ``background``'s gradient (default:
    the first person's). Masks are per person; where a later person covers an earlier one, the earlier
    one's masks are cut there."""
    if height < 16 or width < 16:
        raise ValueError(f"frames must be at least 16 x 16 pixels, got {width} x {height}")
    if not people:
        raise ValueError("a scene needs at least one person")
    t = people[0].mouth_opening.shape[0]
    for p in people:
        if p.mouth_opening.shape != (t,) or p.head_pose.shape != (t, 4) or p.blink.shape != (t,):
            raise ValueError(
                f"per-frame state must share T: opening {tuple(p.mouth_opening.shape)}, "
                f"pose {tuple(p.head_pose.shape)} (want [T, 4]), blink {tuple(p.blink.shape)}"
            )
    backdrop = background or people[0].identity
    px = 2.0 / height
    frames, masks = [], []
    for start in range(0, t, RENDER_BATCH):
        sl = slice(start, min(start + RENDER_BATCH, t))
        x, y = _grid(height, width, sl.stop - sl.start)
        canvas = _background(backdrop, x, y).expand(sl.stop - sl.start, 3, height, width).clone()
        batch_masks: list[list[Tensor]] = []
        for person in people:
            canvas, face, mouth, eyes = _draw_person(canvas, x, y, person, sl, px)
            for earlier in batch_masks:  # this person covers whoever stands behind
                cover = _person_cover(person, x, y, sl, px)
                for i in range(3):
                    earlier[i] = earlier[i] * (1.0 - cover)
            batch_masks.append([face, mouth, eyes])
        frames.append((canvas.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8))
        masks.append(torch.stack([torch.stack(m) for m in batch_masks]))  # [P, 3, B, H, W]
    stacked = torch.cat(masks, dim=2)
    return RenderedScene(torch.cat(frames), stacked[:, 0], stacked[:, 1], stacked[:, 2])


def _person_cover(person: PersonTrack, x: Tensor, y: Tensor, sl: slice, px: float) -> Tensor:
    """Coverage [B, H, W] of a person's silhouette (head with hair, neck, shoulders)."""
    place = person.placement
    x, y, px = (x - place.cx) / place.scale, (y - place.cy) / place.scale, px / place.scale
    pose = person.head_pose[sl].float()
    dx, dy = pose[:, 0].view(-1, 1, 1), pose[:, 1].view(-1, 1, 1)
    ident = person.identity
    head = ellipse_sdf(x - dx, y - (HEAD_CENTRE_Y + dy), ident.face_half_width + ident.hair_volume + 0.08,
                       ident.face_half_height_lower + JAW_DROP + ident.hair_volume)
    body = union(ellipse_sdf(x, y - 1.28, 0.95, 0.52), rounded_box_sdf(x - 0.5 * dx, y - 0.62, 0.16, 0.32, 0.08))
    return coverage(union(head, body), px)


def render_frames(
    identity: FaceIdentity,
    mouth_opening: Tensor,  # [T] in [0, 1]
    head_pose: Tensor,  # [T, 4] (dx, dy, roll, yaw)
    blink: Tensor,  # [T] in [0, 1]
    size: int = 128,
    placement: Placement = Placement(),
) -> RenderedFrames:
    """Render ``T`` frames of one identity at ``size x size`` pixels."""
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    scene = render_scene([PersonTrack(identity, mouth_opening, head_pose, blink, placement)], size, size)
    return RenderedFrames(scene.frames, scene.face_mask[0], scene.mouth_mask[0], scene.eye_mask[0])


def neutral_track(identity: FaceIdentity, placement: Placement = Placement(), frames: int = 1) -> PersonTrack:
    """A person in the neutral pose, mouth closed and eyes open, for ``frames`` frames."""
    zero = torch.zeros(frames)
    return PersonTrack(identity, zero, torch.zeros(frames, 4), zero, placement)


def render_reference(identity: FaceIdentity, size: int = 128, placement: Placement = Placement()) -> Tensor:
    """The identity in its neutral pose, mouth closed and eyes open: ``[3, H, W]`` uint8."""
    return render_scene([neutral_track(identity, placement)], size, size).frames[0]
