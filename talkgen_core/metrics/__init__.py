"""Quality measurements on rendered talking-face video that need no pretrained network.

They rely on the synthetic renderer's colour conventions (``talkgen_core.synth.palette``): lip sync from
the reserved mouth-interior colour against the audio envelope, drift of face/background colour and face
shape against the reference image, and chunk-seam visibility from frame differences.
All take frames as ``[T, 3, H, W]``, uint8 or float in [-1, 1].
"""

from talkgen_core.metrics.colour import delta_e76, srgb_to_lab
from talkgen_core.metrics.drift import DriftResult, drift, slope_per_second
from talkgen_core.metrics.lipsync import LipSyncResult, lagged_correlations, lip_sync, measure_mouth_opening
from talkgen_core.metrics.seams import SeamResult, frame_differences, seam_ratio

__all__ = [
    "DriftResult",
    "LipSyncResult",
    "SeamResult",
    "delta_e76",
    "drift",
    "frame_differences",
    "lagged_correlations",
    "lip_sync",
    "measure_mouth_opening",
    "seam_ratio",
    "slope_per_second",
    "srgb_to_lab",
]
