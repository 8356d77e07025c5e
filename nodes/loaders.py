"""Loader nodes: the DiT (+ adapter, LoRAs), the audio encoder and the VAE."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from talkgen_core.models.handles import LoadedDiT, load_demo_parts, load_dit_handle, load_refiner_handle
from talkgen_core.models.layers import convert_weights

from . import host
from .types import (AUDIO_ENCODER, CATEGORY, DEMO_CHOICE, DEMO_DISTILLED_CHOICE, DEMO_REFINER_CHOICE, MODEL,
                    NONE_CHOICE, VAE_OURS)

DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
WEIGHT_DTYPES = {"stored": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp8_e4m3fn": torch.float8_e4m3fn}
ATTENTION_BACKENDS = ["sdpa", "flash_attn", "sageattention"]


@dataclass(frozen=True)
class TalkGenModel:
    """What travels on a TALKGEN_MODEL socket: the loaded DiT and ComfyUI's memory-manager handle for it."""

    dit: LoadedDiT
    managed: Any  # CoreModelPatcher inside ComfyUI, the module itself outside


def _choices(kind: str, first: list[str]) -> list[str]:
    return first + host.model_files(kind)


class ModelLoader:
    NODE_NAME = "ModelLoader"
    DISPLAY_NAME = "TalkGen Model Loader"
    CATEGORY = f"{CATEGORY}/loaders"
    DESCRIPTION = (
        "Loads the audio-conditioned Wan2.1 DiT: a base model (official shards, ComfyUI single file, fp16/bf16/"
        "fp8) plus the InfiniteTalk/MultiTalk adapter file, or the tiny embedded demo model (base, its distilled "
        "student, or its refiner for TalkGen Refiner)."
    )
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("the talking-video DiT, ready for TalkGen Sampler",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (_choices("diffusion_models", [DEMO_CHOICE, DEMO_DISTILLED_CHOICE, DEMO_REFINER_CHOICE]), {
                    "default": DEMO_CHOICE,
                    "tooltip": "base DiT from models/diffusion_models (Wan2.1-I2V-14B-480P), or the embedded demo "
                               "model, or its distilled few-step student (one pass per step; the sampler then uses "
                               "its preset unless a preset is named), or the demo's embedded refiner (for TalkGen "
                               "Refiner: lifts the demo's video to twice its size). A merged InfiniteTalk checkpoint "
                               "also works here with adapter = none."}),
                "adapter": (_choices("model_patches", [NONE_CHOICE]), {
                    "default": NONE_CHOICE,
                    "tooltip": "InfiniteTalk / MultiTalk audio adapter from models/model_patches "
                               "(e.g. infinitetalk_single.safetensors); merged on top of the base"}),
                "weight_dtype": (list(WEIGHT_DTYPES), {
                    "default": "stored",
                    "tooltip": "dtype the weights are kept in: stored = as in the file; fp8_e4m3fn halves the memory "
                               "of bf16 (per-tensor scaled)"}),
                "compute_dtype": (list(DTYPES), {
                    "default": "auto",
                    "tooltip": "dtype of the arithmetic; weights stay in their stored dtype (fp8 included). "
                               "auto = the stored dtype, bf16 for fp8 weights"}),
                "attention": (ATTENTION_BACKENDS, {
                    "default": "sdpa",
                    "tooltip": "attention kernel; flash_attn and sageattention need their packages and a GPU"}),
            },
        }

    def load(self, model: str, adapter: str, weight_dtype: str, compute_dtype: str, attention: str):
        if model in (DEMO_CHOICE, DEMO_DISTILLED_CHOICE, DEMO_REFINER_CHOICE):
            if adapter != NONE_CHOICE:
                raise ValueError("adapter: the embedded demo model has its audio layers built in; set adapter to none")
            if model == DEMO_REFINER_CHOICE:
                dit = load_refiner_handle("cpu")
            else:
                dit = load_demo_parts(device="cpu", variant="base" if model == DEMO_CHOICE else "distilled").dit
        else:
            paths = [host.resolve_model_file("diffusion_models", model)]
            if adapter != NONE_CHOICE:
                paths.append(host.resolve_model_file("model_patches", adapter))
            # ComfyUI's layers let its memory manager load the model partially; fp8 keeps the core's scaled layers
            fp8 = WEIGHT_DTYPES[weight_dtype] == torch.float8_e4m3fn
            dit = load_dit_handle(paths, device="cpu", compute_dtype=DTYPES[compute_dtype],
                                  operations=None if fp8 else host.layer_operations())
        if WEIGHT_DTYPES[weight_dtype] is not None:
            convert_weights(dit.module, WEIGHT_DTYPES[weight_dtype])
        dit.module.set_attention_backend(attention)
        if DTYPES[compute_dtype] is not None:
            dit.module.set_compute_dtype(DTYPES[compute_dtype])
        return (TalkGenModel(dit, host.manage_model(dit.module)),)


class LoRA:
    NODE_NAME = "LoRA"
    DISPLAY_NAME = "TalkGen LoRA"
    CATEGORY = f"{CATEGORY}/loaders"
    DESCRIPTION = (
        "Adds a LoRA (lightx2v / FusionX step distillation or any lora_down/lora_up or lora_A/lora_B file) to a "
        "TalkGen model. It is applied unmerged while sampling, so fp8 base weights stay intact and the loaded "
        "model is shared unchanged with other branches of the graph. Chain several for several LoRAs."
    )
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("the same model with this LoRA added",)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "model from TalkGen Model Loader (or another TalkGen LoRA)"}),
                "lora": (_choices("loras", []) or [NONE_CHOICE], {
                    "tooltip": "LoRA file from models/loras; a 4-step distillation LoRA wants steps 4, "
                               "text CFG 1, audio CFG 2"}),
                "strength": ("FLOAT", {"default": 1.0, "min": -4.0, "max": 4.0, "step": 0.05,
                                        "tooltip": "LoRA strength (1.0 = as trained)"}),
            },
        }

    def add(self, model: TalkGenModel, lora: str, strength: float):
        if lora == NONE_CHOICE:
            return (model,)
        path = host.resolve_model_file("loras", lora)
        return (replace(model, dit=model.dit.with_lora(path, strength)),)


class AudioEncoderLoader:
    NODE_NAME = "AudioEncoderLoader"
    DISPLAY_NAME = "TalkGen Audio Encoder Loader"
    CATEGORY = f"{CATEGORY}/loaders"
    DESCRIPTION = (
        "Loads the wav2vec2 speech encoder (chinese-wav2vec2-base in Hugging Face layout or ComfyUI's fp16 "
        "repack, from models/audio_encoders), or the embedded demo encoder."
    )
    RETURN_TYPES = (AUDIO_ENCODER,)
    RETURN_NAMES = ("audio_encoder",)
    OUTPUT_TOOLTIPS = ("the speech encoder, for TalkGen Audio Embeds",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "encoder": (_choices("audio_encoders", [DEMO_CHOICE]), {
                    "default": DEMO_CHOICE,
                    "tooltip": "wav2vec2 weights from models/audio_encoders (e.g. "
                               "wav2vec2-chinese-base_fp16.safetensors), or the embedded demo encoder"}),
            },
        }

    def load(self, encoder: str):
        from talkgen_core.audio import build_wav2vec2
        from talkgen_core.audio.wav2vec2_weights import wav2vec2_config_name

        if encoder == DEMO_CHOICE:
            return (load_demo_parts(device="cpu").wav2vec2,)
        path = host.resolve_model_file("audio_encoders", encoder)
        return (build_wav2vec2(wav2vec2_config_name(path), device="cpu", weights=str(path)),)


class VAELoader:
    NODE_NAME = "VAELoader"
    DISPLAY_NAME = "TalkGen VAE Loader"
    CATEGORY = f"{CATEGORY}/loaders"
    DESCRIPTION = (
        "Loads the Wan2.1 video VAE with streaming, constant-memory decode (Wan2.1_VAE.pth or "
        "wan_2.1_vae.safetensors from models/vae), or the embedded demo VAE. ComfyUI's own VAE Loader output "
        "works in the sampler too."
    )
    RETURN_TYPES = (VAE_OURS,)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("the video VAE, for TalkGen Sampler",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (_choices("vae", [DEMO_CHOICE]), {
                    "default": DEMO_CHOICE,
                    "tooltip": "Wan2.1 VAE from models/vae, or the embedded demo VAE"}),
            },
            "optional": {
                "dtype": (["auto", "fp32", "bf16", "fp16"], {
                    "default": "auto",
                    "tooltip": "weight dtype of a Wan2.1 VAE file: auto = bf16 when ComfyUI computes on a GPU "
                               "(half the memory, as ComfyUI's own VAE), fp32 on the CPU. The demo VAE stays "
                               "fp32"}),
            },
        }

    def load(self, vae: str, dtype: str = "auto"):
        from talkgen_core.models.vae import load_vae, vae_dtype

        if vae == DEMO_CHOICE:
            return (load_demo_parts(device="cpu").vae,)
        weights = vae_dtype(dtype, host.compute_device())
        return (load_vae(host.resolve_model_file("vae", vae), device="cpu", dtype=weights),)


NODES = [ModelLoader, LoRA, AudioEncoderLoader, VAELoader]
