"""Rewrite a shipped API workflow to run on the embedded demo model, so every graph's wiring can be executed
on a CPU: model slots become the demo model, native VAE/text/CLIP-vision loaders (which need real weights)
are replaced or dropped with the links into them, LoRA slots get a tiny LoRA made for the demo DiT, and the
sampler runs small and short."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors.torch import save_file

DEMO = "talkgen-demo (embedded)"
DROPPED = {"CLIPLoader", "CLIPTextEncode", "CLIPVisionLoader", "CLIPVisionEncode", "ModelPatchLoader"}
QUICK_SAMPLER = {"size": "demo", "steps": 2}
QUICK_REFINER = {"steps": 1}


def make_demo_lora(path: Path, rank: int = 2, seed: int = 0) -> Path:
    """A small lora_down/lora_up file aimed at the demo DiT's first block's self-attention."""
    from talkgen_core.models import build_dit

    dim = build_dit("demo", device="meta").config.dim
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name in ("q", "k", "v", "o"):
        key = f"diffusion_model.blocks.0.self_attn.{name}"
        tensors[f"{key}.lora_down.weight"] = torch.randn(rank, dim, generator=generator) * 0.02
        tensors[f"{key}.lora_up.weight"] = torch.randn(dim, rank, generator=generator) * 0.02
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def demo_graph(graph: dict, lora_name: str) -> dict:
    graph = copy.deepcopy(graph)
    dropped = {node_id for node_id, node in graph.items() if node["class_type"] in DROPPED}
    for node_id in dropped:
        del graph[node_id]
    for node in graph.values():
        inputs = node["inputs"]
        for name, value in list(inputs.items()):
            if isinstance(value, list) and value[0] in dropped:
                del inputs[name]
        kind = node["class_type"]
        if kind == "TalkGenModelLoader" and not inputs["model"].startswith("talkgen-demo"):  # the embedded stay
            inputs.update(model=DEMO, adapter="none")
        elif kind == "TalkGenAudioEncoderLoader":
            inputs.update(encoder=DEMO)
        elif kind == "UNETLoader":  # ComfyUI's own MODEL needs real weights: the demo model takes its slot
            node.update(class_type="TalkGenModelLoader", inputs={"model": DEMO, "adapter": "none",
                        "weight_dtype": "stored", "compute_dtype": "auto", "attention": "sdpa"})
        elif kind == "VAELoader":
            node.update(class_type="TalkGenVAELoader", inputs={"vae": DEMO})
        elif kind == "TalkGenLoRA":
            inputs.update(lora=lora_name)
        elif kind == "TalkGenSampler":
            inputs.update(QUICK_SAMPLER)
        elif kind == "TalkGenRefiner":
            inputs.update(QUICK_REFINER)
    return graph


def save_demo_as_checkpoints(folder: Path) -> None:
    """The demo model written as real checkpoint files (``base.safetensors`` in ComfyUI's single-file layout,
    ``adapter.safetensors``, ``vae.safetensors``, ``wav2vec2.safetensors``), for the real-weights code paths."""
    from talkgen_core.pipeline import load_demo_models

    models = load_demo_models()
    dit_state = models.dit.state_dict()
    adapter = {k: v for k, v in dit_state.items() if k.startswith("audio_proj.") or ".audio_cross_attn." in k
               or ".norm_x." in k}
    base = {f"model.diffusion_model.{k}": v for k, v in dit_state.items() if k not in adapter}
    save_file(base, str(folder / "base.safetensors"))
    save_file(adapter, str(folder / "adapter.safetensors"))
    save_file(models.vae.state_dict(), str(folder / "vae.safetensors"))
    save_file({f"wav2vec2.{k}": v.contiguous() for k, v in models.wav2vec2.state_dict().items()},
              str(folder / "wav2vec2.safetensors"))
