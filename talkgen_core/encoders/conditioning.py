"""From encoder files (or loaded encoders) to what the chunk loop takes: prompt states and a CLIP encoder.

``generate()`` (CLI ``--text-encoder`` / ``--clip-vision``, queue columns ``text_encoder`` / ``clip_vision``)
calls these; the DiT's widths are checked here, so a wrong file fails before any rendering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from talkgen_core.encoders.clip_vision import CLIPVisionEncoder, load_clip_vision
from talkgen_core.encoders.text import MAX_TOKENS, UMT5TextEncoder, load_text_encoder

# InfiniteTalk's default (its wan_multitalk_14B config's English sample_neg_prompt), used when none is given.
DEFAULT_NEGATIVE_PROMPT = (
    "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly "
    "drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy "
    "background, three legs, many people in the background, walking backwards"
)

TextEncoderInput = Union[str, Path, UMT5TextEncoder]
ClipVisionInput = Union[str, Path, CLIPVisionEncoder]


def prompt_states(
    text_encoder: TextEncoderInput,
    prompt: Optional[str],
    negative_prompt: Optional[str],
    *,
    device: Union[str, torch.device] = "cpu",
    tokenizer: Optional[Union[str, Path]] = None,
    text_dim: Optional[int] = None,
    max_tokens: int = MAX_TOKENS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt states, negative prompt states), each ``[1, L, text_dim]`` float32 on the CPU.

    ``prompt`` None is the empty prompt (its ``</s>`` alone, as the official code encodes ""); ``negative_prompt``
    None is :data:`DEFAULT_NEGATIVE_PROMPT`. A file is loaded on ``device`` and released before returning, so
    the encoder never shares memory with the rendering. ``max_tokens``: the DiT's ``text_len``.
    """
    encoder = text_encoder if isinstance(text_encoder, UMT5TextEncoder) else load_text_encoder(
        text_encoder, device=device, tokenizer=tokenizer)
    if text_dim is not None and encoder.width != text_dim:
        raise ValueError(f"the text encoder gives {encoder.width}-wide states but the DiT takes {text_dim}; use "
                         "the umT5-XXL file that belongs to the model (4096 for Wan2.1)")
    states = encoder.encode(prompt or "", max_tokens)
    negative = encoder.encode(DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt, max_tokens)
    del encoder
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return states, negative


def clip_vision_encoder(clip_vision: ClipVisionInput, *, device: Union[str, torch.device] = "cpu",
                        clip_dim: Optional[int] = None) -> CLIPVisionEncoder:
    """A loaded CLIP vision encoder (a file is loaded on ``device``) whose width fits the DiT's ``clip_dim``."""
    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32  # the official fp16 on GPUs
    encoder = clip_vision if isinstance(clip_vision, CLIPVisionEncoder) else load_clip_vision(
        clip_vision, device=device, dtype=dtype)
    if clip_dim is not None and encoder.width != clip_dim:
        raise ValueError(f"the CLIP vision model gives {encoder.width}-wide tokens but the DiT takes {clip_dim}; use "
                         "clip_vision_h.safetensors (ViT-H, 1280) for Wan2.1")
    return encoder
