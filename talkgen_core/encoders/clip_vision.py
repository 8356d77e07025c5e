"""The CLIP ViT-H/14 image encoder (ComfyUI's ``clip_vision_h.safetensors``) through transformers'
``CLIPVisionModel``.

What Wan2.1 / InfiniteTalk take from it (the DiT's ``clip_fea``): the hidden states after the 31st of the
32 blocks, i.e. before the last block and without the post-norm (open-clip's ``use_31_block=True``,
ComfyUI's ``penultimate_hidden_states``): ``[1, 257, 1280]``, the class token and 16 x 16 patches. The frame
is prepared as the official code does: bicubic resize of the whole frame to 224 x 224 (no crop, so the
aspect ratio is squashed), [-1, 1] -> [0, 1], CLIP mean / std. ComfyUI's CLIP Vision Encode node instead
crops the centre by default, so its tokens differ slightly for non-square frames.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F

from talkgen_core.encoders.assemble import assemble
from talkgen_core.encoders.errors import require
from talkgen_core.encoders.keymaps import (
    CLIP_VISION_ANCHOR, OFFICIAL_TEXT_TOWER, KeyLayoutError, clip_vision_config, from_official_clip, is_official_clip,
    prefix_before,
)
from talkgen_core.encoders.weights import read_encoder_weights

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_pixels(frame: torch.Tensor, size: int) -> torch.Tensor:
    """``[3, H, W]`` in [-1, 1] -> ``[1, 3, size, size]`` normalised CLIP input (float32)."""
    if frame.dim() != 3 or frame.shape[0] != 3:
        raise ValueError(f"the CLIP encoder takes one frame [3, H, W] in [-1, 1], got {tuple(frame.shape)}")
    x = F.interpolate(frame[None].float(), size=(size, size), mode="bicubic", align_corners=False)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x * 0.5 + 0.5 - mean) / std


class CLIPVisionEncoder:
    """A chunk's reference frame ``[3, H, W]`` in [-1, 1] -> penultimate states ``[1, N_img, width]`` float32.

    Called once per chunk by the chunk loop (``StreamConditioning.clip_encoder``); the last frame's tokens are
    kept, so a still reference is encoded once.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.image_size = int(model.config.image_size)
        self._last: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        if self._last is not None and self._last[0].shape == frame.shape and torch.equal(self._last[0], frame):
            return self._last[1]
        weight = self.model.get_input_embeddings().weight
        pixels = clip_pixels(frame.to(weight.device), self.image_size).to(weight.dtype)
        states = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        tokens = states.float()  # [1, N_img, width]
        self._last = (frame.detach().clone(), tokens)
        return tokens


def load_clip_vision(
    path: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
    num_heads: Optional[int] = None,
) -> CLIPVisionEncoder:
    """CLIP vision from ``path`` (ComfyUI / transformers layout, any float dtype or scaled fp8; or the official
    Wan2.1 ``models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth``) in ``dtype``.

    ``num_heads``: only for sizes other than the known ViTs (see :func:`keymaps.clip_vision_config`).
    """
    transformers = require("transformers", "the CLIP vision encoder")
    what = f"CLIP vision model {path}"
    tensors = read_encoder_weights(path, dtype, device, what="CLIP vision model",
                                   keep=lambda key: not key.startswith(OFFICIAL_TEXT_TOWER)).tensors
    if is_official_clip(tensors):  # models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth
        tensors = from_official_clip(tensors)
    prefix = prefix_before(tensors, CLIP_VISION_ANCHOR)
    if prefix is None:
        raise KeyLayoutError(f"{what} is not a CLIP vision encoder (no {CLIP_VISION_ANCHOR!r} key); give "
                             "clip_vision_h.safetensors")
    shapes = {k[len(prefix):]: v.shape for k, v in tensors.items() if k.startswith(prefix)}
    config = transformers.CLIPVisionConfig(**clip_vision_config(shapes, num_heads))
    model = assemble(lambda: transformers.CLIPVisionModel(config), tensors, CLIP_VISION_ANCHOR, what)
    return CLIPVisionEncoder(model)
