"""Speaker masks: which image region belongs to which speaker.

The DiT routes each speaker's audio tokens to that speaker's region. Artists either paint masks or, when
they have none, give boxes in percent of the frame; with neither, speakers get equal side-by-side columns
(the official default for two speakers: left half and right half, each inset by 5 % of the frame).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

DEFAULT_MARGIN = 0.05


def parse_boxes(text: str) -> list[tuple[float, float, float, float]]:
    """Parse ``"x0,y0,x1,y1; x0,y0,x1,y1"`` (percent of width/height, one box per speaker)."""
    boxes = []
    for index, part in enumerate(p for p in text.replace("\n", ";").split(";") if p.strip()):
        try:
            values = [float(v) for v in part.split(",")]
        except ValueError as exc:
            raise ValueError(f"speaker box {index + 1} {part.strip()!r}: expected four numbers x0,y0,x1,y1") from exc
        if len(values) != 4:
            raise ValueError(f"speaker box {index + 1} {part.strip()!r}: expected four numbers x0,y0,x1,y1")
        x0, y0, x1, y1 = values
        if not (0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 100):
            raise ValueError(
                f"speaker box {index + 1} {part.strip()!r}: needs 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 100 (percent)"
            )
        boxes.append((x0, y0, x1, y1))
    return boxes


def masks_from_boxes(boxes: Sequence[tuple[float, float, float, float]], height: int, width: int) -> torch.Tensor:
    """Rasterise percent boxes into binary masks.  # -> [P, height, width] float32 in {0, 1}"""
    masks = torch.zeros(len(boxes), height, width)
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        r0, r1 = round(y0 / 100 * height), max(round(y1 / 100 * height), round(y0 / 100 * height) + 1)
        c0, c1 = round(x0 / 100 * width), max(round(x1 / 100 * width), round(x0 / 100 * width) + 1)
        masks[index, r0:r1, c0:c1] = 1.0
    return masks


def default_boxes(speakers: int, margin: float = DEFAULT_MARGIN) -> list[tuple[float, float, float, float]]:
    """Equal side-by-side columns, each inset by ``margin`` of the frame (percent boxes)."""
    if speakers < 1:
        raise ValueError(f"speakers must be at least 1, got {speakers}")
    inset = 100 * margin
    column = 100 / speakers
    return [(i * column + inset, inset, (i + 1) * column - inset, 100 - inset) for i in range(speakers)]


def fit_masks(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize painted masks to the video size (nearest) and binarise at 0.5.

    # masks: [P, h, w] or [h, w] in [0, 1] -> [P, height, width] float32 in {0, 1}
    """
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"speaker masks must be [P, H, W] or [H, W], got shape {tuple(masks.shape)}")
    if not torch.isfinite(masks).all():
        raise ValueError("speaker masks contain NaN or infinite values")
    resized = F.interpolate(masks[None].float(), size=(height, width), mode="nearest")[0]
    fitted = (resized > 0.5).float()
    empty = [i + 1 for i in range(fitted.shape[0]) if fitted[i].sum() == 0]
    if empty:
        raise ValueError(f"speaker mask(s) {empty} are empty after resizing to {width}x{height}: paint a larger region")
    return fitted
