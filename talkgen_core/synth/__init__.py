"""Procedural talking faces for the embedded demo model: identities, speech-like audio, rendered clips.

Frames are uint8 ``[T, 3, H, W]``; audio is float32 ``[S]`` at 16 kHz; everything is deterministic in its
seed. Identity seeds below ``FIRST_TRAINING_IDENTITY_SEED`` are held out from training.
"""

from talkgen_core.synth.clip import DEFAULT_FPS, TalkingClip, make_clip
from talkgen_core.synth.envelope import frame_rms
from talkgen_core.synth.identity import (
    EXAMPLE_IDENTITY_SEED,
    FIRST_TRAINING_IDENTITY_SEED,
    FaceIdentity,
    is_held_out_identity,
    sample_identity,
    training_identity_seed,
)
from talkgen_core.synth.motion import DEFAULT_LEAD_FRAMES, mouth_opening_from_envelope
from talkgen_core.synth.render import RenderedFrames, render_frames, render_reference
from talkgen_core.synth.speech import SAMPLE_RATE, synthesize_speech

__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_LEAD_FRAMES",
    "EXAMPLE_IDENTITY_SEED",
    "FIRST_TRAINING_IDENTITY_SEED",
    "SAMPLE_RATE",
    "FaceIdentity",
    "RenderedFrames",
    "TalkingClip",
    "frame_rms",
    "is_held_out_identity",
    "make_clip",
    "mouth_opening_from_envelope",
    "render_frames",
    "render_reference",
    "sample_identity",
    "synthesize_speech",
    "training_identity_seed",
]
