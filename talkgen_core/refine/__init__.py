"""Coarse-to-fine refinement (InfinityHuman): lift a low-resolution talking video to a higher resolution.

:func:`refine_video` runs one of two refiners (:mod:`.video`): the embedded one, trained on the demo's domain
(:mod:`.embedded`: :class:`~.model.RefinerDiT` conditioned on degraded low-resolution latents, pose maps from its
landmark network and the reference's latent as a prefix), or, for real weights, the training-free route on any
audio-conditioned DiT (the dubbing path's SDEdit at the target size, anchored on the reference image).
"""

from .upscale import UpscaledFrames, refined_size
from .video import DEFAULT_CONDITION_NOISE, DEFAULT_SCALE, DEFAULT_STRENGTH, fitted_soundtrack, refine_video

__all__ = ["DEFAULT_CONDITION_NOISE", "DEFAULT_SCALE", "DEFAULT_STRENGTH", "UpscaledFrames", "fitted_soundtrack",
           "refine_video", "refined_size"]
