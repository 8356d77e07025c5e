"""Stand-ins for the few native ComfyUI nodes the shipped workflows use, for running workflows without the host.

Files are looked up in example_inputs/ (the pack's stand-in for ComfyUI's input folder, where the pack installs
them as ``talkgen_<name>``; see nodes/example_inputs.py). Outputs have the
host's layouts: IMAGE [B, H, W, 3] in [0, 1], MASK [B, H, W], AUDIO {"waveform": [1, C, S], "sample_rate"},
VIDEO (outside the host: a file path).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from helpers.pack_import import REPO_ROOT

INPUT_DIR = REPO_ROOT / "example_inputs"
INSTALLED_PREFIX = "talkgen_"


def input_file(name: str):
    """The example input a workflow's Load node names, as ComfyUI's input folder would hold it."""
    return INPUT_DIR / name.removeprefix(INSTALLED_PREFIX)


class LoadImage:
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("STRING",)}}

    def load(self, image):
        with Image.open(input_file(image)) as img:
            pixels = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(pixels)[None]
        return tensor, torch.zeros(1, *tensor.shape[1:3])


class LoadAudio:
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"audio": ("STRING",)}}

    def load(self, audio):
        from talkgen_core.audio import decode_audio

        decoded = decode_audio(input_file(audio))
        waveform = torch.as_tensor(np.asarray(decoded.samples), dtype=torch.float32)
        waveform = waveform[None] if waveform.ndim == 1 else waveform
        return ({"waveform": waveform[None], "sample_rate": int(decoded.sample_rate)},)


class LoadVideo:
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"file": ("STRING",)}, "optional": {"video-preview": ("STRING",)}}

    def load(self, file, **preview):
        return (str(input_file(file)),)


NATIVE_DOUBLES = {"LoadImage": LoadImage, "LoadAudio": LoadAudio, "LoadVideo": LoadVideo}
