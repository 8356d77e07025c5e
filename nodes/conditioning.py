"""Conditioning nodes: speaker masks, reference images / keyframes, and the dubbing source video."""

from __future__ import annotations

from typing import Any

from talkgen_core.conditioning.reference import ReferenceInput, open_dubbing_source
from talkgen_core.conditioning.speaker_masks import SpeakerMasks, speaker_masks
from talkgen_core.conditioning.speech import parse_times
from talkgen_core.video.frames import FrameSequence, images_to_frames

from .types import CATEGORY, REFERENCE, SPEAKER_MASKS


class SpeakerMasksNode:
    NODE_NAME = "SpeakerMasks"
    DISPLAY_NAME = "TalkGen Speaker Masks"
    CATEGORY = f"{CATEGORY}/conditioning"
    DESCRIPTION = (
        "Tells the model which region belongs to which speaker, so each voice moves only its own face. Use painted "
        "masks (one per speaker, in speaker order), or boxes in percent, or neither for equal side-by-side columns."
    )
    RETURN_TYPES = (SPEAKER_MASKS, "MASK")
    RETURN_NAMES = ("speaker_masks", "preview")
    OUTPUT_TOOLTIPS = ("speaker regions for TalkGen Sampler", "the regions as a MASK batch, one per speaker")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "speakers": ("INT", {"default": 2, "min": 1, "max": 8,
                                      "tooltip": "number of speakers (must match the voices in TalkGen Audio Embeds)"}),
                "strengths": ("STRING", {"default": "", "tooltip": "optional per-speaker audio strength, comma "
                                                                     "separated (e.g. 1.0, 0.8); empty = 1 for all"}),
            },
            "optional": {
                "masks": ("MASK", {"tooltip": "painted masks, one per speaker in order (a MASK batch [P, H, W]); "
                                              "resized like the reference image (scale to cover, centre crop)"}),
                "boxes": ("STRING", {"default": "", "multiline": True,
                                      "tooltip": "one box per speaker as x0,y0,x1,y1 in percent of width/height, "
                                                 "separated by ';' (used when no masks are connected)"}),
            },
        }

    def build(self, speakers: int, strengths: str, masks=None, boxes: str = ""):
        result: SpeakerMasks = speaker_masks(speakers, masks=masks, boxes=boxes, strengths=strengths)
        return (result, result.masks)


class Reference:
    NODE_NAME = "Reference"
    DISPLAY_NAME = "TalkGen Reference"
    CATEGORY = f"{CATEGORY}/conditioning"
    DESCRIPTION = (
        "The look of the video: one image for every chunk, a batch with one image per chunk, or keyframes shown at "
        "given times (each chunk takes the keyframe at or before its start)."
    )
    RETURN_TYPES = (REFERENCE,)
    RETURN_NAMES = ("reference",)
    OUTPUT_TOOLTIPS = ("reference frames for TalkGen Sampler",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "the portrait (or a batch of images)"}),
                "mode": (["single", "per_chunk", "keyframes"], {
                    "default": "single",
                    "tooltip": "single: the first image for the whole video; per_chunk: image i for chunk i (the "
                               "last repeats); keyframes: image i from keyframe_times[i] seconds on"}),
            },
            "optional": {
                "keyframe_times": ("STRING", {"default": "", "tooltip": "keyframes mode: one time in seconds per "
                                                                          "image, comma separated, ascending"}),
            },
        }

    def build(self, image, mode: str, keyframe_times: str = ""):
        frames = images_to_frames(image)
        if mode == "single":
            return (ReferenceInput(image=frames[0]),)
        if mode == "per_chunk":
            return (ReferenceInput(images=list(frames)),)
        times = parse_times(keyframe_times, "keyframe_times")
        return (ReferenceInput(images=list(frames), keyframe_times=times),)


def _video_source(video: Any) -> tuple[Any, Any]:
    """A ComfyUI VIDEO as (file path or in-memory FrameSequence, its AUDIO or None); a file is not decoded here."""
    source = getattr(video, "get_stream_source", None)
    if isinstance(video, str) or (source is not None and isinstance(source(), str)):
        return (video if isinstance(video, str) else source()), None
    components = video.get_components()
    return FrameSequence.from_images(components.images, float(components.frame_rate)), components.audio


class DubbingSource:
    NODE_NAME = "DubbingSource"
    DISPLAY_NAME = "TalkGen Dubbing Source"
    CATEGORY = f"{CATEGORY}/conditioning"
    DESCRIPTION = (
        "Sparse-frame video dubbing: the source video gives each chunk its reference frame at the chunk's start "
        "time (any source frame rate), keeping identity, camera and gestures while the new audio drives the face."
    )
    RETURN_TYPES = (REFERENCE, "AUDIO", "FLOAT")
    RETURN_NAMES = ("reference", "source_audio", "source_fps")
    OUTPUT_TOOLTIPS = (
        "the source video as reference for TalkGen Sampler",
        "the source's own audio track (silence when it has none)",
        "the source's frame rate",
    )
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "anchor": (["chunk_start", "first_new_frame", "chunk_middle"], {
                    "default": "chunk_start",
                    "tooltip": "which time of a chunk picks its source frame: its first frame (official), its first "
                               "new frame after the context, or its middle"}),
            },
            "optional": {
                "video": ("VIDEO", {"tooltip": "the source video (Load Video); read lazily, never fully in memory"}),
                "images": ("IMAGE", {"tooltip": "or the source as frames (e.g. from Load Video (Upload))"}),
                "images_fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.001,
                                          "tooltip": "frame rate of the images input"}),
            },
        }

    def build(self, anchor: str, video=None, images=None, images_fps: float = 25.0):
        if (video is None) == (images is None):
            raise ValueError("TalkGen Dubbing Source: connect exactly one of video or images")
        if video is not None:
            source, audio = _video_source(video)
        else:
            source, audio = FrameSequence.from_images(images, images_fps), None
        dubbing = open_dubbing_source(source, anchor)
        if audio is None:
            audio = {"waveform": dubbing.audio[None, None], "sample_rate": 16000}
        return (dubbing.reference, audio, dubbing.fps)


NODES = [SpeakerMasksNode, Reference, DubbingSource]
