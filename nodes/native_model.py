"""ComfyUI's own Wan2.1 I2V MODEL plus the InfiniteTalk / MultiTalk MODEL_PATCH, seen through the core's DiT forward.

The chunk loop calls a DiT as ``dit(x, t, context, cond, clip_fea, audio, speaker_masks, audio_scale,
speaker_routing) -> velocity`` (``talkgen_core.models.dit.WanDiT.forward``). :class:`NativeWanDiT` answers that call
with ComfyUI's own model, the way ComfyUI's samplers call it: ``BaseModel.apply_model`` with the MODEL's
transformer options (its patches, block replacements and wrappers), after ``load_models_gpu`` has placed the
MODEL and the MODEL_PATCH (whole or in part: that is ComfyUI's decision, as are weight casting, fp8 and the
LoRA / GGUF patches of the loaders upstream). Only the audio is ours: the audio tokens and the per-block audio
cross-attention run the core's modules (``AudioProjModel``, ``AudioCrossAttention``, speaker routing) whose
layers are the MODEL_PATCH's own, hooked in as ComfyUI's ``attn1_patch`` (speaker affinity, two speakers) and
``attn2_patch`` (the audio residual after the text cross-attention), so both routes compute the same thing.

Contract differences, all ComfyUI's: ``apply_model`` returns the denoised latent ``x - sigma * v``; the adapter
turns it back into the velocity. Without ``clip_fea`` ComfyUI's I2V cross-attention attends its image branch to
the text tokens, where the core drops the branch; give the sampler a CLIP vision output with a native I2V model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from talkgen_core.models.audio_adapter import SpeakerRouting, speaker_affinity
from talkgen_core.models.configs import DiTConfig
from talkgen_core.models.dit import COMPUTE_DTYPES, WanDiT, build_dit

from . import host

def is_native_model(model: Any) -> bool:
    """Whether ``model`` is ComfyUI's MODEL (a ModelPatcher around a BaseModel), not TalkGen Model Loader's."""
    return hasattr(getattr(model, "model", None), "diffusion_model")


def native_config(diffusion_model: nn.Module, patch: nn.Module) -> DiTConfig:
    """The core's config for a native Wan2.1 I2V ``diffusion_model`` with an InfiniteTalk / MultiTalk ``patch``,
    read off their attributes (ComfyUI's loaders already sized them from the files)."""
    dm = diffusion_model
    if getattr(dm, "model_type", None) != "i2v" or getattr(dm, "img_emb", None) is None:
        raise ValueError(
            f"model: ComfyUI's {type(dm).__name__} (model type {getattr(dm, 'model_type', 'unknown')!r}) is not the "
            "Wan2.1 image-to-video DiT InfiniteTalk was trained on; load Wan2.1-I2V-14B with Load Diffusion Model"
        )
    proj = getattr(patch, "audio_proj", None)
    if proj is None or not hasattr(patch, "blocks"):
        raise ValueError(
            f"model_patch: {type(patch).__name__} is not an InfiniteTalk / MultiTalk patch; load "
            "infinitetalk_single.safetensors (or the MultiTalk file) with ComfyUI's Load Model Patch"
        )
    if len(patch.blocks) < dm.num_layers:
        raise ValueError(f"model_patch: it has audio layers for {len(patch.blocks)} blocks, the model has "
                         f"{dm.num_layers}; the patch belongs to another model size")
    features = proj.blocks * proj.channels
    return DiTConfig(
        name=f"comfyui-wan-i2v-{dm.dim}x{dm.num_layers}",
        dim=dm.dim, ffn_dim=dm.ffn_dim, num_heads=dm.num_heads, num_layers=dm.num_layers, out_dim=dm.out_dim,
        in_dim=dm.in_dim, patch_size=tuple(dm.patch_size), freq_dim=dm.freq_dim, text_dim=dm.text_dim,
        text_len=dm.text_len, clip_dim=dm.img_emb.proj[0].normalized_shape[0], eps=dm.eps,
        audio_layers=proj.blocks, audio_dim=proj.channels, audio_window=proj.seq_len,
        vae_scale=proj.input_dim_vf // features - proj.seq_len + 1, audio_intermediate_dim=proj.intermediate_dim,
        audio_token_dim=proj.out_dim, audio_context_tokens=proj.context_tokens,
    )  # fmt: skip


def audio_skeleton(config: DiTConfig, patch: nn.Module, dtype: torch.dtype) -> WanDiT:
    """A ``WanDiT`` on the meta device whose audio layers are the MODEL_PATCH's own modules (so ComfyUI keeps
    placing, casting and patching their weights); only its audio methods and input checks are ever called."""
    skeleton = build_dit(config, device="meta")
    own = dict(patch.named_modules())
    for name, layer in list(skeleton.named_modules()):
        audio = name.startswith("audio_proj.") or ".norm_x" in name or ".audio_cross_attn." in name
        if not audio or not any(True for _ in layer.parameters(recurse=False)):
            continue
        if name not in own:
            raise ValueError(f"model_patch: it has no layer {name!r}; is it an InfiniteTalk / MultiTalk patch?")
        parent, _, leaf = name.rpartition(".")
        setattr(skeleton.get_submodule(parent), leaf, own[name])
    return skeleton.set_compute_dtype(dtype)


class _AudioPass:
    """ComfyUI block patches for one forward: the audio residual of every block, and (label-RoPE routing) the
    speaker affinity taken from the self-attention's roped q, k."""

    def __init__(self, skeleton: WanDiT, tokens: torch.Tensor, grid: tuple[int, int, int],
                 routing: SpeakerRouting, backend: str) -> None:
        self.skeleton, self.tokens, self.grid, self.routing, self.backend = skeleton, tokens, grid, routing, backend
        self.affinity: torch.Tensor | None = None

    def record_affinity(self, kwargs: dict) -> torch.Tensor:  # attn1_patch: q, k [B, L, H, D] after RoPE
        weights = self.routing.region_weights
        assert weights is not None
        with torch.no_grad():
            self.affinity = speaker_affinity(kwargs["q"], kwargs["k"], self.grid[1] * self.grid[2], weights)
        return kwargs["x"]

    def add_audio(self, kwargs: dict) -> torch.Tensor:  # attn2_patch: x [B, L, C], the residual stream
        x = kwargs["x"]
        index = kwargs.get("transformer_options", {}).get("block_index")
        if index is None:
            raise RuntimeError("the native Wan model called its cross-attention patch without a block index")
        block = self.skeleton.blocks[index]
        residual = block.audio_cross_attn(block.norm_x(x).to(self.tokens.dtype), self.tokens, self.grid,
                                          self.routing, self.affinity, self.backend)
        return x + residual.to(x.dtype)


class NativeWanDiT:
    """ComfyUI's MODEL + MODEL_PATCH behind ``WanDiT.forward``'s signature; build it with :func:`native_dit`."""

    def __init__(self, model: Any, model_patch: Any) -> None:
        self.model, self.model_patch = model, model_patch
        self.base = model.model  # comfy.model_base.WAN21
        self.config = native_config(self.base.diffusion_model, model_patch.model)
        dtype = self.base.get_dtype_inference()
        self.skeleton = audio_skeleton(self.config, model_patch.model, dtype if dtype in COMPUTE_DTYPES
                                       else torch.bfloat16)
        self.attention_backend = "sdpa"  # the audio attention's; the DiT's own is ComfyUI's choice
        self.loaded_for: tuple[int, ...] | None = None

    @property
    def blocks(self) -> nn.ModuleList:
        """The native blocks (the chunk loop's cancel and progress hooks go there)."""
        return self.base.diffusion_model.blocks

    @property
    def name(self) -> str:
        """What the job key records: the config and the MODEL's weight patches (LoRA keys and strengths)."""
        patches = sorted((key, [(p[0], p[2]) for p in entries]) for key, entries in self.model.patches.items())
        digest = hashlib.sha256(repr(patches).encode()).hexdigest()[:12]
        return f"ComfyUI MODEL {self.config.name} + MODEL_PATCH (weight patches {digest})"

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.base.diffusion_model.parameters()

    def _load(self, shape: Sequence[int]) -> None:
        """Let ComfyUI place the MODEL and the MODEL_PATCH for inputs of ``shape`` (what its samplers do)."""
        host.load_native_models([self.model, self.model_patch], self.model.memory_required(list(shape)))
        self.loaded_for = tuple(shape)

    def _transformer_options(self, sigma: torch.Tensor, audio: _AudioPass | None) -> dict:
        options = host.native_transformer_options(self.model)
        options["sigmas"] = sigma
        if audio is not None:
            patches = options.setdefault("patches", {})
            patches.setdefault("attn2_patch", []).append(audio.add_audio)
            if audio.routing.needs_affinity:
                patches.setdefault("attn1_patch", []).append(audio.record_affinity)
        return options

    def __call__(
        self,
        x: torch.Tensor,  # [B, z, T, H, W] noisy latent
        t: torch.Tensor,  # [B] (or scalar) time in [0, 1000]
        context: torch.Tensor,  # [B, L_txt, text_dim]
        cond: torch.Tensor,  # [B, 4 + z, T, H, W] mask | conditioning latent
        clip_fea: torch.Tensor | None = None,  # [B, N_img, clip_dim]
        audio: torch.Tensor | None = None,  # [B, P, F, W, L, D]
        speaker_masks: torch.Tensor | None = None,  # [P, h, w]
        audio_scale: float | Sequence[float] | torch.Tensor = 1.0,
        speaker_routing: str = "auto",
    ) -> torch.Tensor:  # [B, z, T, H, W] float32 velocity
        b, frames, height, width = self.skeleton._check_inputs(x, t, context, cond, clip_fea, audio)
        if self.loaded_for is None:
            self._load(x.shape)
        pt, ph, pw = self.config.patch_size
        grid = (frames // pt, height // ph, width // pw)
        t = t.reshape(-1).expand(b) if t.numel() == 1 else t
        sigma = t.float() / self.base.model_sampling.multiplier
        if bool((sigma <= 0).any()):
            raise ValueError("the native model gives a denoised latent, which holds no velocity at t = 0")
        audio_pass = None
        if audio is not None:
            tokens, routing = self.skeleton._audio_tokens(audio, grid, speaker_masks, audio_scale, speaker_routing)
            audio_pass = _AudioPass(self.skeleton, tokens, grid, routing, self.attention_backend)
        text = F.pad(context, (0, 0, 0, self.config.text_len - context.shape[1]))  # zero-padded, as the core does
        extra = {} if clip_fea is None else {"clip_fea": clip_fea}
        denoised = self.base.apply_model(x, sigma, c_concat=cond, c_crossattn=text,
                                         transformer_options=self._transformer_options(sigma, audio_pass), **extra)
        return (x.float() - denoised.float()) / sigma.view(-1, 1, 1, 1, 1)


@contextmanager
def native_dit(model: Any, model_patch: Any) -> Iterator[NativeWanDiT]:
    """The adapter for one run: the MODEL is prepared as ComfyUI's samplers do (``pre_run``; models loaded on the
    first forward, when the latent size is known) and cleaned up however the run ends."""
    if model_patch is None:
        raise ValueError(
            "model_patch: ComfyUI's MODEL needs the InfiniteTalk / MultiTalk audio patch; connect Load Model Patch "
            "(infinitetalk_single.safetensors) to the sampler's model_patch input"
        )
    dit = NativeWanDiT(model, model_patch)
    model.pre_run()
    try:
        yield dit
    finally:
        model.cleanup()
