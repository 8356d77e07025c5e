"""Test-only ComfyUI nodes: a host test copies this file into its server's ``custom_nodes`` (it is never shipped).

* ``TalkGenTestTinyModelPatch``: ComfyUI's Load Model Patch builds its InfiniteTalk patch with the 14B audio sizes
  fixed (40 blocks, 12 wav2vec2 layers of width 768, 32 tokens), so a tiny adapter file cannot pass through it.
  This node builds the same object from ComfyUI's own classes (``MultiTalkAudioProjModel``,
  ``WanMultiTalkAttentionBlock`` with ``comfy.ops.manual_cast`` layers, in a ``CoreModelPatcher``) sized from the
  file, and loads the file strictly.
* ``TalkGenTestClipVisionOutput``: seeded CLIP vision states in place of CLIP Vision Encode, whose ViT-H cannot be
  made tiny; the sampler reads only ``penultimate_hidden_states``.
"""

from __future__ import annotations

import comfy.clip_vision
import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.utils
import folder_paths
import torch
from comfy.ldm.wan.model_multitalk import MultiTalkAudioProjModel, WanMultiTalkAttentionBlock

WINDOW, VAE_SCALE = 5, 4


class TinyMultiTalkPatch(torch.nn.Module):
    def __init__(self, state: dict[str, torch.Tensor], audio_dim: int, device: torch.device) -> None:
        super().__init__()
        ops = comfy.ops.manual_cast
        proj1 = state["audio_proj.proj1.weight"]  # [intermediate, WINDOW * layers * audio_dim]
        token_dim = state["audio_proj.norm.weight"].shape[0]
        self.audio_proj = MultiTalkAudioProjModel(
            seq_len=WINDOW, seq_len_vf=WINDOW + VAE_SCALE - 1, blocks=proj1.shape[1] // (WINDOW * audio_dim),
            channels=audio_dim, intermediate_dim=proj1.shape[0], out_dim=token_dim,
            context_tokens=state["audio_proj.proj3.weight"].shape[0] // token_dim, device=device, operations=ops,
        )  # fmt: skip
        layers = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("blocks."))
        dim = state["blocks.0.audio_cross_attn.proj.weight"].shape[0]
        self.blocks = torch.nn.ModuleList(
            WanMultiTalkAttentionBlock(dim, token_dim, device=device, operations=ops) for _ in range(layers)
        )


class TinyModelPatch:
    CATEGORY = "TalkGen/tests"
    RETURN_TYPES = ("MODEL_PATCH",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": (folder_paths.get_filename_list("model_patches"),),
                             "audio_dim": ("INT", {"default": 64, "min": 1, "max": 4096})}}

    def load(self, name: str, audio_dim: int):
        state = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("model_patches", name), safe_load=True)
        offload = comfy.model_management.unet_offload_device()
        patch = TinyMultiTalkPatch(state, audio_dim, offload)
        patch.load_state_dict(state, strict=True)
        return (comfy.model_patcher.CoreModelPatcher(
            patch, load_device=comfy.model_management.get_torch_device(), offload_device=offload),)


class SeededClipVisionOutput:
    CATEGORY = "TalkGen/tests"
    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "tokens": ("INT", {"default": 257, "min": 1, "max": 1024}),
                             "width": ("INT", {"default": 1280, "min": 1, "max": 4096})}}

    def make(self, seed: int, tokens: int, width: int):
        output = comfy.clip_vision.Output()
        generator = torch.Generator().manual_seed(seed)
        output["penultimate_hidden_states"] = torch.randn(1, tokens, width, generator=generator)
        return (output,)


NODE_CLASS_MAPPINGS = {"TalkGenTestTinyModelPatch": TinyModelPatch,
                       "TalkGenTestClipVisionOutput": SeededClipVisionOutput}
