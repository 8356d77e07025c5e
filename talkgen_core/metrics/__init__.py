"""Quality measurements on rendered talking-face video that need no pretrained network.

They rely on the synthetic renderer's colour conventions (``talkgen_core.synth.palette``): lip sync from
the reserved mouth-interior colour against the audio envelope, drift of face/background colour and face
shape against the reference image, chunk-seam visibility from frame differences, and (from the renderer's
ground-truth boxes) eye-box detail, lip sync at a known mouth and per speaker, head motion from the hair,
and whether the closed mouth stays drawn in silences.
All take frames as ``[T, 3, H, W]``, uint8 or float in [-1, 1].
"""

from talkgen_core.metrics.colour import colour_closeness, delta_e76, srgb_to_lab
from talkgen_core.metrics.detail import detail_ratio, detail_rms
from talkgen_core.metrics.drift import DriftResult, drift, slope_per_second
from talkgen_core.metrics.feature_boxes import FeatureBoxes, feature_boxes
from talkgen_core.metrics.head_motion import centroid_spread, colour_centroids, windowed_spread
from talkgen_core.metrics.lipsync import (
    LipSyncResult, correlation_near, lagged_correlations, lip_sync, measure_mouth_opening,
)
from talkgen_core.metrics.regions import Box, mask_box
from talkgen_core.metrics.seams import SeamResult, frame_differences, seam_ratio
from talkgen_core.metrics.silent_mouth import SilentMouthResult, lip_pixels, silent_frames, silent_mouth
from talkgen_core.metrics.speakers import speaker_sync

__all__ = [
    "Box",
    "DriftResult",
    "FeatureBoxes",
    "LipSyncResult",
    "SeamResult",
    "SilentMouthResult",
    "centroid_spread",
    "colour_centroids",
    "colour_closeness",
    "correlation_near",
    "delta_e76",
    "detail_ratio",
    "detail_rms",
    "drift",
    "feature_boxes",
    "frame_differences",
    "lagged_correlations",
    "lip_pixels",
    "lip_sync",
    "mask_box",
    "measure_mouth_opening",
    "seam_ratio",
    "silent_frames",
    "silent_mouth",
    "slope_per_second",
    "speaker_sync",
    "srgb_to_lab",
    "windowed_spread",
]
