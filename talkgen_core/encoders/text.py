"""The umT5-XXL text encoder (ComfyUI's files) through transformers' ``UMT5EncoderModel``.

What Wan2.1 / InfiniteTalk take from it: the last hidden states (after the final RMS norm) of the prompt's
tokens and its ``</s>``, ``[1, L, 4096]`` with L <= 512. The DiT zero-pads them to its ``text_len`` (512)
itself, which is what the official code does (it encodes with a padding mask, keeps the first L states and
pads with zeros) and what ComfyUI does (``zero_out_masked``); encoding only the L real tokens gives the same
states, since padded positions are masked out of every attention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from talkgen_core.encoders.assemble import assemble
from talkgen_core.encoders.errors import require
from talkgen_core.encoders.keymaps import (
    UMT5_ANCHOR, KeyLayoutError, is_official_umt5, official_umt5_name, prefix_before, umt5_config,
)
from talkgen_core.encoders.tokenizer import UMT5Tokenizer
from talkgen_core.encoders.weights import read_encoder_weights

MAX_TOKENS = 512  # the official text_len


class UMT5TextEncoder:
    """Prompt -> umT5 states ``[1, L, d_model]`` float32 on the CPU (L = tokens + ``</s>``, at most 512)."""

    def __init__(self, model: torch.nn.Module, tokenizer: UMT5Tokenizer, max_tokens: int = MAX_TOKENS) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        vocab = model.get_input_embeddings().weight.shape[0]
        if tokenizer.vocab_size > vocab:
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the text encoder's embedding only "
                             f"{vocab}: they are not a pair (give the umT5 tokenizer with --tokenizer)")

    @property
    def width(self) -> int:
        return int(self.model.config.d_model)

    @torch.no_grad()
    def encode(self, prompt: str, max_tokens: Optional[int] = None) -> torch.Tensor:
        """``max_tokens`` (default: the encoder's, 512) caps the states, e.g. at a small DiT's ``text_len``."""
        device = self.model.get_input_embeddings().weight.device
        limit = self.max_tokens if max_tokens is None else min(max_tokens, self.max_tokens)
        ids = torch.tensor([self.tokenizer(prompt, limit)], device=device)
        return self.model(input_ids=ids).last_hidden_state.float().cpu()  # [1, L, d_model]


def load_text_encoder(
    path: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.bfloat16,
    tokenizer: Optional[Union[str, Path]] = None,
) -> UMT5TextEncoder:
    """umT5 from ``path`` (ComfyUI layout, fp16/bf16/fp32 or scaled fp8; or the official Wan2.1
    ``models_t5_umt5-xxl-enc-bf16.pth``), computing in ``dtype`` on ``device``.

    The tokenizer is the file's own ``spiece_model`` unless ``tokenizer`` (a sentencepiece model or a folder
    holding ``spiece.model``) is given; a file without one and no ``tokenizer`` is an error saying so. The
    default dtype is bf16, the official one: umT5 overflows in fp16 activations.
    """
    transformers = require("transformers", "the umT5 text encoder")
    what = f"text encoder {path}"
    weights = read_encoder_weights(path, dtype, device, what="text encoder")
    tensors = weights.tensors
    if is_official_umt5(tensors):  # models_t5_umt5-xxl-enc-bf16.pth
        tensors = {official_umt5_name(k): v for k, v in tensors.items()}
    prefix = prefix_before(tensors, UMT5_ANCHOR)
    if prefix is None or prefix + "shared.weight" not in tensors:
        raise KeyLayoutError(f"{what} is not a umT5 encoder (no {UMT5_ANCHOR!r} and shared.weight keys); give "
                             "umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    tensors.setdefault(prefix + "encoder.embed_tokens.weight", tensors[prefix + "shared.weight"])  # tied
    config = transformers.UMT5Config(**umt5_config({k[len(prefix):]: v.shape for k, v in tensors.items()
                                                    if k.startswith(prefix)}))
    model = assemble(lambda: transformers.UMT5EncoderModel(config), tensors, UMT5_ANCHOR, what)
    if tokenizer is not None:
        words = UMT5Tokenizer.from_path(tokenizer)
    elif weights.tokenizer_model is not None:
        words = UMT5Tokenizer(weights.tokenizer_model)
    else:
        raise ValueError(f"{what} carries no tokenizer (no spiece_model tensor, as ComfyUI's umT5 files have); "
                         "give umT5's spiece.model (google/umt5-xxl, also in the official Wan2.1 folder) with "
                         "--tokenizer")
    return UMT5TextEncoder(model, words)
