"""ComfyUI's own Wan2.1 I2V model plus its MultiTalk / InfiniteTalk audio patch, built with our DiT's weights.

Used by ``dit_forward.py --against-comfyui`` to time both models side by side at equal config, weights, dtype
and torch. It imports ComfyUI (``COMFYUI_DIR`` on ``sys.path``), so it runs only under ComfyUI's Python; the
core never imports it. ComfyUI is set up the way a user's CPU/GPU server runs it, except that it is told to use
PyTorch's SDPA attention (its CPU default is the slower sub-quadratic kernel), so both sides run the same
attention kernel.

Native calling convention (what ComfyUI's sampler hands ``WanModel``): the 36-channel latent | mask | cond
concatenation, the timestep, text states zero-padded to 512 tokens, CLIP-vision states, and the audio tokens
projected once per chunk in ``transformer_options["audio_embeds"]`` (the ``WanInfiniteTalkToVideo`` node
projects them once, not per step).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from talkgen_core.models.audio_adapter import group_audio_windows
from talkgen_core.models.dit import WanDiT


def import_comfy(attention: str = "pytorch") -> Any:
    """Put ``COMFYUI_DIR`` on ``sys.path``, set ComfyUI's CLI defaults (CPU when no CUDA, SDPA) and import it."""
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        raise RuntimeError("COMFYUI_DIR is not set; point it at a ComfyUI checkout to compare against it")
    if comfy_dir not in sys.path:
        sys.path.insert(0, comfy_dir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = not torch.cuda.is_available()
    comfy.cli_args.args.use_pytorch_cross_attention = attention == "pytorch"
    import comfy.ldm.wan.model
    import comfy.ldm.wan.model_multitalk
    import comfy.ops

    return comfy


class NativeAudioBlock(nn.Module):
    """ComfyUI's per-block audio layers (``norm_x``, ``audio_cross_attn``) with our config's head count.

    ComfyUI's ``WanMultiTalkAttentionBlock`` hard-codes the 14B's 40 heads; it is rebuilt here so that small
    configs compare too (the attention class is ComfyUI's own).
    """

    def __init__(self, comfy: Any, model: WanDiT, operations: Any, dtype: torch.dtype) -> None:
        super().__init__()
        c = model.config
        mt = comfy.ldm.wan.model_multitalk
        self.audio_cross_attn = mt.SingleStreamMultiAttention(
            c.dim, c.audio_token_dim, num_heads=c.num_heads, qkv_bias=True, dtype=dtype, operations=operations
        )
        self.norm_x = operations.LayerNorm(c.dim, dtype=dtype, elementwise_affine=True)


class NativePatchModel(nn.Module):
    """What ``MultiTalkCrossAttnPatch`` reads: ``.model.blocks[i]`` audio layers and ``.model.audio_proj``."""

    def __init__(self, comfy: Any, model: WanDiT, operations: Any, dtype: torch.dtype) -> None:
        super().__init__()
        c = model.config
        self.blocks = nn.ModuleList(NativeAudioBlock(comfy, model, operations, dtype) for _ in range(c.num_layers))
        self.audio_proj = comfy.ldm.wan.model_multitalk.MultiTalkAudioProjModel(
            seq_len=c.audio_window, seq_len_vf=c.audio_window_vf, blocks=c.audio_layers, channels=c.audio_dim,
            intermediate_dim=c.audio_intermediate_dim, out_dim=c.audio_token_dim,
            context_tokens=c.audio_context_tokens, dtype=dtype, operations=operations,
        )  # fmt: skip


@dataclass
class _PatchHolder:
    model: NativePatchModel


@dataclass
class NativeWan:
    """ComfyUI's ``WanModel`` and audio patch loaded with one ``WanDiT``'s weights."""

    comfy: Any
    model: nn.Module
    patch: NativePatchModel
    dtype: torch.dtype
    vae_scale: int

    @classmethod
    def from_dit(cls, comfy: Any, dit: WanDiT, dtype: torch.dtype) -> NativeWan:
        c = dit.config
        ops = comfy.ops.disable_weight_init  # what ComfyUI picks when weights are stored in the compute dtype
        with torch.device("meta"):
            native = comfy.ldm.wan.model.WanModel(
                model_type="i2v", patch_size=c.patch_size, text_len=c.text_len, in_dim=c.in_dim, dim=c.dim,
                ffn_dim=c.ffn_dim, freq_dim=c.freq_dim, text_dim=c.text_dim, out_dim=c.out_dim,
                num_heads=c.num_heads, num_layers=c.num_layers, cross_attn_norm=True, eps=c.eps,
                dtype=dtype, operations=ops,
            )  # fmt: skip
            patch = NativePatchModel(comfy, dit, ops, dtype)
        state = dit.state_dict()
        audio_keys = {k for k in state if ".audio_cross_attn." in k or ".norm_x." in k or k.startswith("audio_proj.")}
        native_state = {k: v for k, v in state.items() if k not in audio_keys}
        patch_state = {k: v for k, v in state.items() if k in audio_keys}
        native.to_empty(device=dit.patch_embedding.weight.device)
        patch.to_empty(device=dit.patch_embedding.weight.device)
        native.load_state_dict(native_state, strict=True)  # copies into each parameter's own dtype
        patch.load_state_dict(patch_state, strict=True)
        return cls(comfy, native.eval(), patch.eval(), dtype, c.vae_scale)

    def audio_embeds(self, audio: torch.Tensor) -> torch.Tensor:
        """Our audio windows [1, P=1, F, W, L, D] -> ComfyUI's ``audio_embeds`` [1, N_t, M, C_a]."""
        first, later = group_audio_windows(audio[:, 0].to(self.dtype), self.vae_scale)
        return self.patch.audio_proj(first, later)

    def forward(self, inputs: dict[str, torch.Tensor], audio_embeds: torch.Tensor) -> torch.Tensor:
        """Velocity [B, z, T, H, W] from the same inputs our ``WanDiT.forward`` takes (one speaker)."""
        mt = self.comfy.ldm.wan.model_multitalk
        context = inputs["context"]
        pad = self.model.text_len - context.shape[1]
        context = torch.nn.functional.pad(context, (0, 0, 0, pad))
        options = {
            "patches": {"attn2_patch": [mt.MultiTalkCrossAttnPatch(_PatchHolder(self.patch), audio_scale=1.0)]},
            "audio_embeds": audio_embeds,
        }
        x = torch.cat([inputs["x"], inputs["cond"]], dim=1).to(self.dtype)
        return self.model(
            x, inputs["t"], context.to(self.dtype), clip_fea=inputs["clip_fea"].to(self.dtype),
            transformer_options=options,
        )  # fmt: skip
