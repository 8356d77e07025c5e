"""Coarse-to-fine refinement (InfinityHuman): lift a low-resolution talking video to a higher resolution.

Two routes: :func:`refine_video`, training-free, on any audio-conditioned DiT (the dubbing path's SDEdit at the
target size, anchored on the reference image); and the embedded refiner's building blocks (degraded
low-resolution latents, pose maps from landmarks, a landmark network and the :class:`RefinerDiT` wrapper).
"""

from .training_free import DEFAULT_SCALE, DEFAULT_STRENGTH, fitted_soundtrack, refine_video
from .upscale import UpscaledFrames, refined_size

__all__ = ["DEFAULT_SCALE", "DEFAULT_STRENGTH", "UpscaledFrames", "fitted_soundtrack", "refine_video",
           "refined_size"]
