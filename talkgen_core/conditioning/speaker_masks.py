"""Speaker masks: which image region belongs to which speaker.

The DiT routes each speaker's audio tokens to that speaker's region. Artists either paint masks or, when
they have none, give boxes in percent of the frame; with neither, speakers get equal side-by-side columns
(the official default for two speakers: left half and right half, each inset by 5 % of the frame).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_MARGIN = 0.05
PREVIEW_SIZE = 256  # side of the preview masks drawn from boxes


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
    """Fit painted masks to the video exactly as the reference image is fitted: scale to cover
    ``height x width`` (nearest), centre-crop, then binarise at 0.5.

    # masks: [P, h, w] or [h, w] in [0, 1] -> [P, height, width] float32 in {0, 1}
    """
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"speaker masks must be [P, H, W] or [H, W], got shape {tuple(masks.shape)}")
    if 0 in masks.shape:
        raise ValueError(
            f"speaker masks have shape {tuple(masks.shape)}, an empty mask batch or a 0-pixel mask; connect one "
            "painted mask per speaker (a MASK batch [P, H, W] with H, W > 0), or leave masks unconnected to use boxes"
        )
    if not torch.isfinite(masks).all():
        raise ValueError("speaker masks contain NaN or infinite values")
    h, w = masks.shape[-2:]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, math.ceil(h * scale)), max(width, math.ceil(w * scale))
    resized = F.interpolate(masks[None].float(), size=(new_h, new_w), mode="nearest")[0]
    top, left = (new_h - height) // 2, (new_w - width) // 2
    fitted = (resized[:, top : top + height, left : left + width] > 0.5).float()
    empty = [i + 1 for i in range(fitted.shape[0]) if fitted[i].sum() == 0]
    if empty:
        raise ValueError(f"speaker mask(s) {empty} are empty after resizing to {width}x{height}: paint a larger region")
    return fitted


def parse_strengths(text: str, speakers: int) -> torch.Tensor:
    """``"1.0, 0.8"`` -> per-speaker audio strengths ``[P]``; empty text means 1 for everyone."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        return torch.ones(speakers)
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"strengths {text!r}: expected numbers separated by commas") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"strengths {text!r}: every strength must be a finite number (e.g. 1.0, 0.8)")
    if len(values) != speakers:
        raise ValueError(f"strengths gives {len(values)} values for {speakers} speakers; give one per speaker")
    return torch.tensor(values)


@dataclass(frozen=True)
class SpeakerMasks:
    """Speaker regions, kept as painted masks or percent boxes until the video size is known."""

    strengths: torch.Tensor  # [P] audio strength per speaker
    painted: torch.Tensor | None = None  # [P, h, w] in [0, 1]
    boxes: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def speakers(self) -> int:
        return int(self.strengths.numel())

    def at_size(self, height: int, width: int) -> torch.Tensor:
        """Binary masks for a ``height x width`` video.  # -> [P, height, width]"""
        if self.painted is not None:
            return fit_masks(self.painted, height, width)
        return masks_from_boxes(self.boxes, height, width)

    @property
    def masks(self) -> torch.Tensor:
        """For previews: painted masks as given, boxes drawn on a square.  # -> [P, h, w]"""
        return self.painted if self.painted is not None else self.at_size(PREVIEW_SIZE, PREVIEW_SIZE)


def read_mask_files(paths: Sequence[str | Path]) -> torch.Tensor:
    """Painted mask images, one per speaker (white = the speaker's region, any size or pixel mode).

    Each is fitted to the first one's size, so they stack.  # -> [P, H, W] float32 in [0, 1]
    """
    from talkgen_core.video.images import read_image

    greys = [torch.from_numpy(read_image(p, f"mask {i + 1}").mean(axis=2)) for i, p in enumerate(paths)]
    if not greys:
        raise ValueError("no mask files given; give one painted mask image per speaker")
    height, width = greys[0].shape
    return torch.stack([g if g.shape == (height, width) else fit_masks(g, height, width)[0] for g in greys])


def speaker_masks(
    speakers: int, masks: torch.Tensor | None = None, boxes: str = "", strengths: str = ""
) -> SpeakerMasks:
    """Painted masks win over boxes, boxes over the default side-by-side layout."""
    weights = parse_strengths(strengths, speakers)
    if masks is not None:
        painted = masks[None] if masks.ndim == 2 else masks
        if painted.ndim != 3 or painted.shape[0] != speakers:
            raise ValueError(
                f"masks: got {tuple(painted.shape)}, expected one mask per speaker ({speakers}) as [P, H, W]"
            )
        fit_masks(painted, *painted.shape[-2:])  # refuse NaN or empty masks now, not mid-render
        return SpeakerMasks(weights, painted=painted.float())
    parsed = parse_boxes(boxes) if boxes.strip() else default_boxes(speakers)
    if len(parsed) != speakers:
        raise ValueError(f"boxes gives {len(parsed)} boxes for {speakers} speakers; give one per speaker")
    return SpeakerMasks(weights, boxes=tuple(parsed))
