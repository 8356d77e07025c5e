"""umT5's sentencepiece tokenizer, as the official Wan code and ComfyUI apply it.

Where it comes from: ComfyUI's umT5 files (the Comfy-Org repack ``umt5_xxl_fp16.safetensors`` and
``umt5_xxl_fp8_e4m3fn_scaled.safetensors``) carry the tokenizer inside, as a ``spiece_model`` uint8 tensor
holding the serialized sentencepiece model; ComfyUI's own source tree ships no umT5 tokenizer (its
``comfy/text_encoders/t5_tokenizer`` is T5 v1.1's 32k vocabulary, which does not fit umT5's 256384). A file
without that tensor needs ``--tokenizer``: google/umt5-xxl's ``spiece.model`` (also in the official
Wan2.1 checkpoint folder, ``google/umt5-xxl/``), or that folder.

A prompt is cleaned as the official code does (HTML entities unescaped, runs of whitespace collapsed, ends
stripped; the official code also runs ``ftfy``, which only repairs mis-decoded text), encoded, and ended
with ``</s>`` (id 1), keeping at most ``max_tokens`` ids with the ``</s>`` last, as transformers' truncation
to 512 does.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from talkgen_core.encoders.errors import require

SPIECE_FILE = "spiece.model"
_WHITESPACE = re.compile(r"\s+")


def clean_prompt(text: str) -> str:
    """The official ``whitespace`` cleaning (without ftfy): unescape HTML twice, collapse whitespace, strip."""
    return _WHITESPACE.sub(" ", html.unescape(html.unescape(text)).strip()).strip()


class UMT5Tokenizer:
    """Prompt -> token ids ending with ``</s>``."""

    def __init__(self, model_proto: bytes) -> None:
        sentencepiece = require("sentencepiece", "the umT5 tokenizer")
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self.eos_id = int(self._processor.eos_id())
        if self.eos_id < 0:
            raise ValueError("the umT5 tokenizer model has no end-of-sequence token; it is not umT5's spiece.model")

    @classmethod
    def from_path(cls, path: str | Path) -> "UMT5Tokenizer":
        """A sentencepiece model file, or a folder holding ``spiece.model`` (e.g. the official google/umt5-xxl)."""
        path = Path(path)
        file = path / SPIECE_FILE if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"tokenizer not found: {file} (give umT5's spiece.model or the folder holding it)")
        return cls(file.read_bytes())

    @property
    def vocab_size(self) -> int:
        return int(self._processor.get_piece_size())

    def __call__(self, text: str, max_tokens: int = 512) -> list[int]:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        ids = list(self._processor.encode(clean_prompt(text)))
        return ids[: max_tokens - 1] + [self.eos_id]
