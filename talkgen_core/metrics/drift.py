"""Identity and colour drift over a long video, measured against the reference image.

Per frame:
- face colour error: CIE76 delta E between the median L*a*b* colour of the frame and of the reference over
  the reference's facial skin (the skin mask eroded a little, so small head motion stays inside it);
- background colour error: the same over two side strips of the image that the renderer never covers;
- shape error: 1 - IoU of the frame's skin mask against the reference's (skin = pixels within a delta E
  tolerance of the reference skin colour).
Each series is summarised by its least-squares slope per second: about 0 for a stable video, positive when
the picture drifts away from the reference. Using median colours keeps the colour errors insensitive to
motion (an opening mouth or a blink moves a minority of the region's pixels) while a tint of the whole
face or background shows up in full.
The skin colour is read from the cheeks of the reference, which assumes the renderer's framing (a centred
head); pass ``reference_face_mask`` to use a known mask instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from talkgen_core.metrics.colour import delta_e76, srgb_to_lab
from talkgen_core.metrics.frames import to_unit_rgb
from talkgen_core.metrics.regions import erode

SKIN_DELTA_E_TOLERANCE = 12.0
EROSION_FRACTION = 0.03  # erosion radius as a fraction of the image width
BACKGROUND_STRIP = 0.12  # width of each side strip (fraction of the width)
BACKGROUND_HEIGHT = 0.6  # strips cover the top part only (shoulders are below)
# Cheek patches in fractions of (width, height): below the eyes, beside the nose, above the mouth.
CHEEK_PATCHES = ((0.36, 0.44, 0.52, 0.57), (0.56, 0.64, 0.52, 0.57))


@dataclass(frozen=True)
class DriftResult:
    face_colour_slope: float  # delta E per second
    background_colour_slope: float  # delta E per second
    shape_error_slope: float  # (1 - IoU) per second
    face_delta_e: Tensor  # [T]
    background_delta_e: Tensor  # [T]
    face_iou: Tensor  # [T]


def slope_per_second(values: Tensor, fps: float) -> float:
    """Least-squares slope of ``values`` [T] against time ``t / fps`` (0 for fewer than 2 points)."""
    n = values.shape[0]
    if n < 2:
        return 0.0
    t = torch.arange(n, dtype=torch.float64) / fps
    v = values.double()
    tc = t - t.mean()
    return float((tc * (v - v.mean())).sum() / (tc * tc).sum())


def _cheek_skin_lab(lab: Tensor) -> Tensor:
    """Median L*a*b* over the cheek patches of one image [3, H, W] -> [3]."""
    _, h, w = lab.shape
    pixels = []
    for x0, x1, y0, y1 in CHEEK_PATCHES:
        r0, c0 = int(y0 * h), int(x0 * w)
        patch = lab[:, r0 : max(int(y1 * h), r0 + 1), c0 : max(int(x1 * w), c0 + 1)]
        pixels.append(patch.reshape(3, -1))
    return torch.cat(pixels, dim=1).median(dim=1).values


def _background_region(h: int, w: int) -> Tensor:
    region = torch.zeros(h, w, dtype=torch.bool)
    strip = max(int(round(w * BACKGROUND_STRIP)), 1)
    rows = max(int(round(h * BACKGROUND_HEIGHT)), 1)
    region[:rows, :strip] = True
    region[:rows, w - strip :] = True
    return region


def _masked_median_lab(lab: Tensor, region: Tensor) -> Tensor:
    """lab [T, 3, H, W], region [H, W] bool -> per-channel median colour [T, 3]."""
    return lab[..., region].median(dim=-1).values


def drift(
    frames: Tensor,  # [T, 3, H, W] uint8 or float in [-1, 1]
    reference: Tensor,  # [3, H, W] same convention
    fps: float,
    reference_face_mask: Tensor | None = None,  # [H, W] bool/float, optional known face mask
) -> DriftResult:
    """Colour and shape drift of ``frames`` relative to ``reference``."""
    if frames.shape[-3:] != reference.shape[-3:]:
        raise ValueError(
            f"frames {tuple(frames.shape)} and reference {tuple(reference.shape)} differ in size"
        )
    lab = srgb_to_lab(to_unit_rgb(frames))
    ref_lab = srgb_to_lab(to_unit_rgb(reference))
    h, w = ref_lab.shape[-2:]
    skin_lab = _cheek_skin_lab(ref_lab).view(3, 1, 1)

    ref_skin = delta_e76(ref_lab, skin_lab) < SKIN_DELTA_E_TOLERANCE  # [H, W]
    if reference_face_mask is not None:
        ref_skin = reference_face_mask > 0.5
    frame_skin = delta_e76(lab, skin_lab) < SKIN_DELTA_E_TOLERANCE  # [T, H, W]
    intersection = (frame_skin & ref_skin).sum(dim=(-2, -1)).float()
    union = (frame_skin | ref_skin).sum(dim=(-2, -1)).float().clamp_min(1.0)
    iou = intersection / union

    face_region = erode(ref_skin.unsqueeze(0), int(round(EROSION_FRACTION * w)))[0]
    if not bool(face_region.any()):
        face_region = ref_skin
    ref_batch = ref_lab.unsqueeze(0)
    face_de = delta_e76(_masked_median_lab(lab, face_region), _masked_median_lab(ref_batch, face_region), -1)
    bg_region = _background_region(h, w)
    bg_de = delta_e76(_masked_median_lab(lab, bg_region), _masked_median_lab(ref_batch, bg_region), -1)
    return DriftResult(
        face_colour_slope=slope_per_second(face_de, fps),
        background_colour_slope=slope_per_second(bg_de, fps),
        shape_error_slope=slope_per_second(1.0 - iou, fps),
        face_delta_e=face_de,
        background_delta_e=bg_de,
        face_iou=iou,
    )
