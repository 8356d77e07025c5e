"""Still images as a viewer shows them: ``[H, W, 3]`` float32 in [0, 1], whatever the file's pixel mode.

PIL's ``convert("RGB")`` is only right for 8-bit modes: it clips 16- and 32-bit grey (``I;16``, ``I``) and
float (``F``) images to 255, so a 16-bit grayscale PNG reads as pure white, and it drops alpha, so the
transparent part of a cut-out portrait shows whatever colour the file happens to store there. Here wide
modes are scaled by their range, transparency is composited over white (as on a web page), and the EXIF
orientation of phone photos is applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

SIXTEEN_BIT = 65535.0
# float (mode F) images: scaled by the first of these ranges that holds their maximum
FLOAT_RANGES = (1.0, 255.0, SIXTEEN_BIT)
WIDE_BANDS = (("I",), ("F",))  # 16/32-bit integer grey (I;16, I;16B, I;16L, I) and float grey


def image_to_rgb(image) -> np.ndarray:
    """A PIL image -> ``[H, W, 3]`` float32 in [0, 1].

    Modes: ``I;16*`` and ``I`` are 16-bit grey (divided by 65535, as ComfyUI does; values outside clipped);
    ``F`` floats are divided by the smallest of 1, 255 or 65535 that holds their maximum; modes with alpha
    (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa`` / ``La``, or ``P`` / ``RGB`` with a transparent colour) are
    composited over white; all other modes (``L``, ``P``, ``1``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``) go
    through PIL's own RGB conversion.
    """
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    bands = image.getbands()
    if bands in WIDE_BANDS:
        grey = np.asarray(image).astype(np.float64)
        if not np.isfinite(grey).all():
            raise ValueError(f"the {image.mode} image holds NaN or infinite pixels")
        if bands == ("I",):
            scale = SIXTEEN_BIT
        else:
            scale = next((r for r in FLOAT_RANGES if grey.max(initial=0.0) <= r), float(grey.max()))
        unit = np.clip(grey / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(unit[..., None], 3, axis=2)
    if "A" in bands or "a" in bands or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def read_image(path: Union[str, Path], what: str = "image") -> np.ndarray:
    """An image file -> ``[H, W, 3]`` float32 in [0, 1]; errors name ``what`` and the file."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return image_to_rgb(img)
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"{what} {path} could not be read ({exc}); give a PNG, JPEG or WebP image") from exc
