"""Face framing for the embedded demo model: generate in a square window that frames the face as the demo's
training portraits are framed, and paste the frames back into the picture.

The demo DiT sees 4 x 4 tokens a frame at 64 px. A face away from the centre or smaller than a portrait keeps its
place in what it draws but gets almost no mouth motion (``benchmarks/quality.py --measure moved-face``: r 0.05 at
its true mouth with the v3 weights), while the same face framed as a portrait follows the speech with r 0.65.
So, as talking-head pipelines crop a face and paste it back: the face's landmarks (the refiner's landmark
network) are fitted to the mean portrait's by scale and shift (least squares), which gives the square window of
the frame that holds the face as a portrait; the model renders that window (cropped from the picture at its own
resolution), and every frame is pasted back over the still picture with a feathered edge. A face already framed
like a portrait (within the spread of the training portraits' own fits) is left alone, so the usual demo is
unchanged, and landmarks that do not fit a face (residual above :data:`MAX_RESIDUAL`) turn framing off.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from talkgen_core.sampling.references import resize_and_crop

FACE_CROP_MODES = ("auto", "off")  # auto: frame the face for the demo model when it is not a portrait already
TEMPLATE_SIZE = 64  # the mean portrait's frame (the demo size): landmarks [K, 2] in its pixels
TEMPLATE_IDENTITIES = 200  # training-range identities averaged into the mean portrait
# A window this close to the frame's centred square is the portrait framing already: the portraits' own fits
# (400 identities, training and held-out, at 64 px) spread over sides 0.83-1.19 of the frame (1 % beyond
# 0.90-1.13: faces differ in size) with centres within 1.3 px of the frame's.
SIDE_TOLERANCE = 0.2  # relative to the short side
CENTRE_TOLERANCE = 0.05  # of the short side, in either direction
SIDE_RANGE = (0.3, 1.6)  # windows outside this share of the short side are not trusted
MAX_RESIDUAL = 0.06  # RMS landmark misfit, as a share of the window side, above which no face was found
FEATHER_PX = 2.0  # width of the pasted window's soft edge, output pixels

Detector = Callable[[torch.Tensor], torch.Tensor]  # [F, 3, h, w] in [-1, 1] -> landmarks [F, K, 2] (x, y)


@dataclass(frozen=True)
class FaceWindow:
    """A square of the output frame, in output pixels (edge coordinates: pixel ``(0, 0)`` spans [0, 1)²); it may
    reach past the frame's edges."""

    left: float
    top: float
    side: float

    def to_dict(self) -> dict[str, float]:
        return {"left": round(self.left, 4), "top": round(self.top, 4), "side": round(self.side, 4)}

    def crop(self, picture: torch.Tensor, frame_hw: tuple[int, int], size: int) -> torch.Tensor:
        """The window of ``picture`` [3, h, w] in [-1, 1] (any resolution; framed into the output frame
        ``frame_hw`` as :func:`resize_and_crop` frames it) -> [3, size, size]; past the picture's edges its border
        pixels repeat."""
        height, width = frame_hw
        fine = max(1, math.ceil(size / self.side))  # render the frame this much finer, so the crop is not upsampled
        frame = resize_and_crop(picture, height * fine, width * fine)
        theta = torch.tensor([[self.side / width, 0.0, (2 * self.left + self.side) / width - 1.0],
                              [0.0, self.side / height, (2 * self.top + self.side) / height - 1.0]])
        grid = F.affine_grid(theta[None], [1, 3, size, size], align_corners=False)
        return F.grid_sample(frame[None].float(), grid, mode="bilinear", padding_mode="border",
                             align_corners=False)[0].clamp(-1.0, 1.0)

    def paste(self, frames: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        """Frames of the window [T, 3, s, s] over ``background`` [3, H, W] -> [T, 3, H, W], feathered at the
        window's edge."""
        height, width = background.shape[-2:]
        xs = torch.arange(width, dtype=torch.float32) + 0.5  # pixel centres, edge coordinates
        ys = torch.arange(height, dtype=torch.float32) + 0.5
        u = 2.0 * (xs - self.left) / self.side - 1.0  # [W]: the window's normalised coordinates
        v = 2.0 * (ys - self.top) / self.side - 1.0  # [H]
        grid = torch.stack(torch.broadcast_tensors(u[None, :], v[:, None]), dim=-1)  # [H, W, 2]
        inside = torch.minimum(torch.minimum(xs - self.left, self.left + self.side - xs)[None, :],
                               torch.minimum(ys - self.top, self.top + self.side - ys)[:, None])  # [H, W] px
        weight = (inside / FEATHER_PX).clamp(0.0, 1.0).to(frames.dtype)
        drawn = F.grid_sample(frames, grid[None].expand(frames.shape[0], -1, -1, -1).to(frames.dtype),
                              mode="bilinear", padding_mode="border", align_corners=False)
        return background.to(frames)[None] * (1.0 - weight) + drawn * weight


@functools.cache
def portrait_template() -> torch.Tensor:
    """The mean training portrait's landmarks in a :data:`TEMPLATE_SIZE` frame: [K, 2] (x, y), the renderer's
    geometry for :data:`TEMPLATE_IDENTITIES` identities of the training range at rest."""
    from talkgen_core.synth.identity import FIRST_TRAINING_IDENTITY_SEED, sample_identity
    from talkgen_core.synth.landmarks import person_landmarks
    from talkgen_core.synth.layout import Placement
    from talkgen_core.synth.render import PersonTrack

    points = [person_landmarks(PersonTrack(sample_identity(FIRST_TRAINING_IDENTITY_SEED + i), torch.zeros(1),
                                           torch.zeros(1, 4), torch.zeros(1), Placement()),
                               TEMPLATE_SIZE, TEMPLATE_SIZE)[0] for i in range(TEMPLATE_IDENTITIES)]
    return torch.stack(points).mean(0)


def fit_window(points: torch.Tensor, template: torch.Tensor) -> tuple[FaceWindow, float]:
    """Least-squares scale and shift taking ``template`` [K, 2] onto ``points`` [K, 2] (pixel centres): the window
    the template's frame lands on, and the RMS misfit as a share of the window's side."""
    source, target = template.double() + 0.5, points.double() + 0.5  # edge coordinates
    centred_s, centred_t = source - source.mean(0), target - target.mean(0)
    scale = float((centred_s * centred_t).sum() / (centred_s * centred_s).sum())
    shift = target.mean(0) - scale * source.mean(0)
    residual = float((target - (scale * source + shift)).pow(2).sum(-1).mean().sqrt())
    side = scale * TEMPLATE_SIZE
    return FaceWindow(float(shift[0]), float(shift[1]), side), residual / max(abs(side), 1e-9)


def is_portrait_framing(window: FaceWindow, frame_hw: tuple[int, int]) -> bool:
    """Whether ``window`` is the frame's centred short-side square, within the training portraits' spread."""
    height, width = frame_hw
    short = min(height, width)
    centre_x, centre_y = window.left + window.side / 2, window.top + window.side / 2
    return abs(window.side / short - 1.0) <= SIDE_TOLERANCE and abs(centre_x - width / 2) <= CENTRE_TOLERANCE * short \
        and abs(centre_y - height / 2) <= CENTRE_TOLERANCE * short


def find_face_window(frame: torch.Tensor, detector: Detector, detector_size: int = TEMPLATE_SIZE,
                     ) -> Optional[FaceWindow]:
    """The window that frames the face of ``frame`` [3, H, W] in [-1, 1] (the output frame) as a portrait; None
    when it is framed so already, or when no face is found. ``detector`` runs at a short side of
    ``detector_size``."""
    height, width = frame.shape[-2:]
    factor = detector_size / min(height, width)
    small = resize_and_crop(frame, round(height * factor), round(width * factor))
    with torch.no_grad():
        points = detector(small[None].float())[0] / factor  # [K, 2], output pixels (approximately)
    if not bool(torch.isfinite(points).all()):
        return None
    window, misfit = fit_window(points, portrait_template())
    short = min(height, width)
    if misfit > MAX_RESIDUAL or not SIDE_RANGE[0] <= window.side / short <= SIDE_RANGE[1]:
        return None
    return None if is_portrait_framing(window, (height, width)) else window


class PastingSink:
    """A frame sink that pastes each batch of window frames [T, 3, s, s] into ``background`` [3, H, W] and hands
    the whole frames to ``sink``."""

    def __init__(self, sink, window: FaceWindow, background: torch.Tensor) -> None:
        self.sink, self.window, self.background = sink, window, background

    def write(self, frames: torch.Tensor) -> None:
        self.sink.write(self.window.paste(frames, self.background))

    def close(self) -> None:
        self.sink.close()

    def abort(self) -> None:
        """Drop the output, as the wrapped sink does on an error or cancel (an mp4 writer's partial file)."""
        abort = getattr(self.sink, "abort", None)
        if abort is not None:
            abort()


__all__ = ["FACE_CROP_MODES", "FaceWindow", "PastingSink", "find_face_window", "fit_window", "is_portrait_framing",
           "portrait_template"]
