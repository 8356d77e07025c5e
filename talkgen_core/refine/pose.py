"""Pose maps: landmarks as Gaussian heatmaps, one channel per landmark, at pixel resolution."""

from __future__ import annotations

import torch


def pose_maps(landmarks: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """``[T, K, 2]`` pixel positions (x, y; pixel ``(row, col)``'s centre at ``(col, row)``) -> ``[T, K, H, W]``
    heatmaps ``exp(-d^2 / (2 sigma^2))``, 1 at a landmark. A non-finite position (landmark unseen) gives a zero
    map."""
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must be [T, K, 2] (x, y), got shape {tuple(landmarks.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be greater than 0, got {sigma}")
    points = landmarks.float()
    seen = torch.isfinite(points).all(dim=-1)  # [T, K]
    points = torch.where(seen[..., None], points, torch.zeros_like(points))
    xs = torch.arange(width, dtype=torch.float32, device=points.device)
    ys = torch.arange(height, dtype=torch.float32, device=points.device)
    dx2 = (xs.view(1, 1, 1, width) - points[..., 0, None, None]) ** 2  # [T, K, 1, W]
    dy2 = (ys.view(1, 1, height, 1) - points[..., 1, None, None]) ** 2  # [T, K, H, 1]
    maps = torch.exp(-(dx2 + dy2) / (2.0 * sigma**2))
    return maps * seen[..., None, None]
