"""Signed distance fields and anti-aliased compositing for the procedural face renderer.

Coordinates are normalised image coordinates: x to the right and y downwards, both in [-1, 1] across the
image, so one pixel is ``2 / size`` wide. Every function broadcasts: points are ``[B, H, W]`` (or anything
broadcastable) and shape parameters are tensors shaped ``[B, 1, 1]`` or plain floats. A negative distance
means inside. Anti-aliasing turns a distance into a pixel coverage with a one-pixel-wide linear ramp, which
is exact for straight edges and close enough for the smooth shapes drawn here.
"""

from __future__ import annotations

import torch
from torch import Tensor

Scalar = Tensor | float


def ellipse_sdf(x: Tensor, y: Tensor, rx: Scalar, ry: Scalar) -> Tensor:
    """Approximate distance to an axis-aligned ellipse centred at the origin.

    Uses the first-order estimate ``f / |grad f|`` of the implicit function ``f = |p / r| - 1``; it is
    exact on the boundary, which is all the anti-aliasing needs, and it stays monotone away from it.
    The estimate is bounded below by the larger axis distance to the bounding box (a true lower bound), which
    keeps very flat ellipses from smearing into lines across the image. Radii may be zero.
    """
    rx_t = torch.as_tensor(rx, dtype=x.dtype).clamp_min(1e-6)
    ry_t = torch.as_tensor(ry, dtype=x.dtype).clamp_min(1e-6)
    ux, uy = x / rx_t, y / ry_t
    vx, vy = ux / rx_t, uy / ry_t
    k0 = torch.sqrt(ux * ux + uy * uy)
    k1 = torch.sqrt(vx * vx + vy * vy).clamp_min(1e-6)
    estimate = k0 * (k0 - 1.0) / k1
    box = torch.maximum(x.abs() - rx_t, y.abs() - ry_t)  # lower bound of the box distance, cheaper
    return torch.maximum(estimate, box)


def circle_sdf(x: Tensor, y: Tensor, r: Scalar) -> Tensor:
    """Exact distance to a circle of radius ``r`` centred at the origin."""
    return torch.sqrt(x * x + y * y) - r


def rounded_box_sdf(x: Tensor, y: Tensor, half_w: Scalar, half_h: Scalar, radius: Scalar) -> Tensor:
    """Exact distance to an axis-aligned box with rounded corners, centred at the origin."""
    qx = x.abs() - half_w + radius
    qy = y.abs() - half_h + radius
    ox, oy = qx.clamp_min(0.0), qy.clamp_min(0.0)
    outside = torch.sqrt(ox * ox + oy * oy)
    inside = torch.maximum(qx, qy).clamp_max(0.0)
    return outside + inside - radius


def capsule_sdf(x: Tensor, y: Tensor, half_length: Scalar, radius: Scalar) -> Tensor:
    """Exact distance to a horizontal capsule (a segment of the given half length, thickened by radius)."""
    half = torch.as_tensor(half_length, dtype=x.dtype)
    qx = (x.abs() - half).clamp_min(0.0)
    return torch.sqrt(qx * qx + y * y) - radius


def rotate(x: Tensor, y: Tensor, angle: Scalar) -> tuple[Tensor, Tensor]:
    """Rotate points by ``angle`` radians (positive turns +x towards +y, i.e. clockwise on screen)."""
    a = torch.as_tensor(angle, dtype=x.dtype)
    c, s = torch.cos(a), torch.sin(a)
    return c * x - s * y, s * x + c * y


def coverage(distance: Tensor, pixel_size: float) -> Tensor:
    """Fraction of a pixel covered by the inside of a shape, from its signed distance (one-pixel ramp)."""
    return (0.5 - distance / pixel_size).clamp(0.0, 1.0)


def intersect(a: Tensor, b: Tensor) -> Tensor:
    """Distance to the intersection of two shapes (the usual max of the two fields)."""
    return torch.maximum(a, b)


def union(a: Tensor, b: Tensor) -> Tensor:
    """Distance to the union of two shapes."""
    return torch.minimum(a, b)


def composite(canvas: Tensor, colour: Tensor, alpha: Tensor) -> Tensor:
    """Paint ``colour`` over ``canvas`` with per-pixel ``alpha`` ("over" operator, straight alpha).

    canvas: [B, 3, H, W]; colour: [3], [B, 3] or [B, 3, H, W]; alpha: [B, H, W] in [0, 1].
    """
    if colour.dim() == 1:
        colour = colour.view(1, 3, 1, 1)
    elif colour.dim() == 2:
        colour = colour[:, :, None, None]
    a = alpha.unsqueeze(1)
    return canvas * (1.0 - a) + colour * a
