"""Whether the closed mouth is still drawn during the pauses of the speech.

A model that only learnt to paint an open mouth over the face can leave a blank patch of skin where the lips
should be whenever nobody speaks. Measured on the renderer's colour conventions:
- silent frames: the audio envelope (RMS per video frame) stays under ``SILENCE_GATE`` of its loud level (the
  95th percentile) for the frame and ``margin`` frames either side (the renderer keeps the mouth shut under
  the same gate, and its mouth moves a frame ahead of the sound);
- lip pixels: pixels inside the mouth box whose nearest colour among the lip colours and the skin colour is a
  lip colour, within ``LIP_MAX_DELTA_E`` of it. Nearest-colour classification needs no tolerance tuned to
  an identity's lip-skin contrast, which is small (about 10 delta E) next to that of the lip line.
The share is the mean lip-pixel count over silent frames divided by the reference's count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from talkgen_core.metrics.colour import delta_e76, srgb_to_lab
from talkgen_core.metrics.frames import to_unit_rgb
from talkgen_core.metrics.regions import Box
from talkgen_core.synth.envelope import frame_rms
from talkgen_core.synth.motion import NOISE_GATE

RGB = tuple[float, float, float]
SILENCE_GATE = NOISE_GATE
LIP_MAX_DELTA_E = 15.0
SILENCE_MARGIN_FRAMES = 2


@dataclass(frozen=True)
class SilentMouthResult:
    share: float  # mean lip pixels over silent frames / the reference's lip pixels (NaN without a silent frame)
    silent_lip_pixels: float  # mean over silent frames
    speaking_lip_pixels: float  # mean over the other frames (NaN if none)
    reference_lip_pixels: float
    silent_frames: int
    lip_pixels: Tensor  # [T] per frame


def silent_frames(audio: Tensor, sample_rate: int, fps: float, num_frames: int,
                  margin: int = SILENCE_MARGIN_FRAMES, gate: float = SILENCE_GATE) -> Tensor:
    """audio [S] -> [T] bool: frames in a pause at least ``margin`` frames from any sound."""
    envelope = frame_rms(audio, sample_rate, fps, num_frames)
    loud = float(torch.quantile(envelope.double(), 0.95)) if num_frames else 0.0
    quiet = envelope < gate * loud if loud > 0 else torch.ones(num_frames, dtype=torch.bool)
    if margin <= 0:
        return quiet
    loud_near = F.max_pool1d((~quiet).float().view(1, 1, -1), 2 * margin + 1, stride=1, padding=margin)
    return loud_near.view(-1) < 0.5


def lip_pixels(frames: Tensor, lips: Sequence[RGB], skin: RGB, box: Box,
               max_delta_e: float = LIP_MAX_DELTA_E) -> Tensor:
    """frames [T, 3, H, W] -> [T]: pixels in ``box`` nearer a lip colour than ``skin`` and within ``max_delta_e``."""
    rgb = to_unit_rgb(frames)[..., box.top : box.bottom, box.left : box.right]
    lab = srgb_to_lab(rgb)
    to_lab = lambda c: srgb_to_lab(torch.tensor(c, dtype=torch.float32).view(3, 1, 1))  # noqa: E731
    to_lip = torch.stack([delta_e76(lab, to_lab(c)) for c in lips]).min(dim=0).values
    to_skin = delta_e76(lab, to_lab(skin))
    return ((to_lip < to_skin) & (to_lip < max_delta_e)).sum(dim=(-2, -1)).float()


def silent_mouth(
    frames: Tensor,  # [T, 3, H, W] uint8 or float in [-1, 1]
    reference: Tensor,  # [3, H, W]: the face in its neutral pose, mouth closed
    audio: Tensor,  # [S] mono, the speech the frames were made for
    sample_rate: int,
    fps: float,
    lips: Sequence[RGB],  # the closed mouth's colours (lips, lip line)
    skin: RGB,
    box: Box,  # around the mouth
) -> SilentMouthResult:
    """How much of the reference's closed mouth the frames keep while the audio is silent."""
    reference_count = float(lip_pixels(reference[None], lips, skin, box)[0])
    if reference_count == 0:
        raise ValueError("the reference shows no lip pixels inside the mouth box: check the box and colours")
    counts = lip_pixels(frames, lips, skin, box)
    silent = silent_frames(audio, sample_rate, fps, counts.shape[0])
    mean = lambda x: float(x.mean()) if x.numel() else float("nan")  # noqa: E731
    silent_mean = mean(counts[silent])
    return SilentMouthResult(
        share=silent_mean / reference_count, silent_lip_pixels=silent_mean, speaking_lip_pixels=mean(counts[~silent]),
        reference_lip_pixels=reference_count, silent_frames=int(silent.sum()), lip_pixels=counts,
    )
