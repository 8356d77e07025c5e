"""The text (umT5-XXL) and image (CLIP ViT-H vision) encoders, from the files ComfyUI users have, run through
``transformers`` (the optional extra ``talkgen[encoders]``).

Names are resolved lazily, so ``import talkgen_core.encoders`` needs neither transformers nor torch work.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "load_text_encoder": "text",
    "UMT5TextEncoder": "text",
    "load_clip_vision": "clip_vision",
    "CLIPVisionEncoder": "clip_vision",
    "UMT5Tokenizer": "tokenizer",
    "EncoderPackageMissing": "errors",
    "KeyLayoutError": "keymaps",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
