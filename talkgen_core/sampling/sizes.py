"""Output sizes: the official aspect-ratio buckets, explicit ``WxH`` sizes, and a small demo size.

The official pipeline picks, for the first frame's aspect ratio ``h / w``, the bucket with the closest ratio
(480p and 720p tables below, as ``(height, width)``). Sizes must be multiples of 16: 8x VAE downsampling
times the DiT's 2x2 patches.
"""

from __future__ import annotations

import re
from typing import Optional

SIZE_MULTIPLE = 16

BUCKETS: dict[str, tuple[tuple[int, int], ...]] = {
    "480p": (
        (320, 1216), (384, 1024), (448, 896), (512, 768), (576, 704), (640, 640), (704, 576), (768, 512),
        (832, 448), (896, 448), (960, 384), (1088, 384), (1152, 320), (1216, 320), (1280, 320),
    ),
    "720p": (
        (448, 2048), (512, 1792), (576, 1600), (640, 1408), (704, 1280), (768, 1216), (832, 1088), (896, 1024),
        (960, 960), (1024, 896), (1088, 832), (1152, 768), (1216, 768), (1280, 704), (1344, 704), (1408, 640),
        (1472, 640), (1536, 576), (1664, 576), (1856, 512), (1920, 512),
    ),
}  # fmt: skip

# the demo model's default: the short side 64 pixels, aspect kept (cheap enough for minutes of video on a CPU).
# The short side, not the area, so that people keep the size they were trained at: two side by side on a 2:1
# image get 128 x 64, each 64 high, as the demo's two-person scenes.
DEMO_SHORT_SIDE = 64


def bucket_size(height: int, width: int, resolution: str = "480p") -> tuple[int, int]:
    """The official bucket ``(height, width)`` whose ratio h/w is closest to the input's."""
    try:
        table = BUCKETS[resolution]
    except KeyError:
        raise ValueError(f"unknown resolution {resolution!r}; choose one of: {', '.join(BUCKETS)}") from None
    ratio = height / width
    return min(table, key=lambda hw: abs(hw[0] / hw[1] - ratio))


def short_side_size(height: int, width: int, short_side: int = DEMO_SHORT_SIDE) -> tuple[int, int]:
    """A ``(height, width)`` whose shorter side is ``short_side``, the input's aspect, both multiples of 16."""
    scale = short_side / min(height, width)
    h = max(SIZE_MULTIPLE, round(height * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    w = max(SIZE_MULTIPLE, round(width * scale / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    return h, w


def resolve_size(spec: Optional[str], source_hw: tuple[int, int], default: str = "480p") -> tuple[int, int]:
    """Turn a size request into ``(height, width)``.

    spec: ``"WxH"`` (e.g. ``"832x480"``, multiples of 16), ``"480p"`` / ``"720p"`` (official buckets for the
    source's aspect), ``"demo"`` (short side 64), or None for ``default``.
    source_hw: the reference frame's ``(height, width)``.
    """
    spec = default if spec is None else spec.strip().lower()
    if spec in BUCKETS:
        return bucket_size(*source_hw, resolution=spec)
    if spec == "demo":
        return short_side_size(*source_hw)
    match = re.fullmatch(r"(\d+)\s*[x*]\s*(\d+)", spec)
    if not match:
        raise ValueError(
            f"size {spec!r} not understood; use WIDTHxHEIGHT (e.g. 832x480), {', '.join(BUCKETS)} or demo"
        )
    width, height = int(match.group(1)), int(match.group(2))
    if width % SIZE_MULTIPLE or height % SIZE_MULTIPLE or width <= 0 or height <= 0:
        raise ValueError(f"size {width}x{height}: width and height must be positive multiples of {SIZE_MULTIPLE}")
    return height, width
