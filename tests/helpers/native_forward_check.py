"""Run by ``tests/nodes/test_native_model.py`` in ComfyUI's Python, from ``COMFYUI_DIR``: one DiT forward three ways.

``python native_forward_check.py TMP_DIR`` writes the tiny weight files of ``comfy_tiny_weights`` there and prints
one JSON object:

* ``native_P``: relative error of ComfyUI's own model (Load Diffusion Model's loader) + the adapter's MODEL_PATCH
  behind ``nodes/native_model.py`` against the core's ``WanDiT`` on the same files, for P speakers (1: plain,
  2: label RoPE, 3: masks), batch 2;
* ``host_layers``: how many of the core DiT's linear / conv / norm layers are ComfyUI's when built with
  ``operations=comfy.ops.manual_cast`` (``host_total``: how many there are), and ``host_ops`` its error;
* ``partial_lowvram`` / ``partial``: whether ComfyUI's ModelPatcher loaded that model partially (lowvram, a 1 MB
  budget), and the error of a forward then.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [os.getcwd(), str(REPO), str(REPO / "tests")]  # ComfyUI first: its ``nodes`` is not the pack's

import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True  # as the host tests' server runs (--cpu)
import comfy.model_management as mm  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.ops  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.utils  # noqa: E402
import torch  # noqa: E402

from helpers.comfy_test_nodes import TinyMultiTalkPatch  # noqa: E402
from helpers.comfy_tiny_weights import write_tiny_files  # noqa: E402
from helpers.dit_inputs import dit_inputs  # noqa: E402
from talkgen_core.models.checkpoint import load_dit  # noqa: E402


def pack_nodes_module(name: str):
    """``nodes/<name>.py`` of this pack, imported as a sub-module of a package that is not ComfyUI's ``nodes``."""
    package = importlib.util.module_from_spec(importlib.machinery.ModuleSpec("talkgen_pack_nodes", None,
                                                                             is_package=True))
    package.__path__ = [str(REPO / "nodes")]
    sys.modules["talkgen_pack_nodes"] = package
    return importlib.import_module(f"talkgen_pack_nodes.{name}")


def speaker_masks(speakers: int, size: int = 8) -> torch.Tensor:
    """[P, size, size]: vertical stripes, one per speaker, the last column left as background."""
    masks = torch.zeros(speakers, size, size)
    width = (size - 1) // speakers
    for p in range(speakers):
        masks[p, :, p * width : (p + 1) * width] = 1.0
    return masks


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


def main(folder: Path) -> dict:
    native = pack_nodes_module("native_model")
    base, adapter = write_tiny_files(folder, folder)
    ours = load_dit([base, adapter]).eval()
    cpu = mm.unet_offload_device()
    model = comfy.sd.load_diffusion_model(str(base))
    patch_state = comfy.utils.load_torch_file(str(adapter), safe_load=True)
    patch = TinyMultiTalkPatch(patch_state, ours.config.audio_dim, cpu)
    patch.load_state_dict(patch_state, strict=True)
    patcher = comfy.model_patcher.CoreModelPatcher(patch, load_device=mm.get_torch_device(), offload_device=cpu)
    result: dict = {}
    with torch.no_grad(), native.native_dit(model, patcher) as dit:
        for speakers in (1, 2, 3):
            inputs = dit_inputs(ours.config, batch=2, speakers=speakers, seed=speakers)
            masks = speaker_masks(speakers) if speakers > 1 else None
            want = ours(**inputs, speaker_masks=masks)
            result[f"native_{speakers}"] = relative_error(dit(**inputs, speaker_masks=masks), want)
        result["native_config"] = dit.config.name

        hosted = load_dit([base, adapter], operations=comfy.ops.manual_cast).eval()
        layers = [m for m in hosted.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv3d, torch.nn.LayerNorm))
                  or "RMSNorm" in type(m).__name__]
        result["host_total"] = len(layers)
        result["host_layers"] = sum(hasattr(m, "comfy_cast_weights") for m in layers)
        inputs = dit_inputs(ours.config, batch=1, speakers=1, seed=7)
        want = ours(**inputs)
        result["host_ops"] = relative_error(hosted(**inputs), want)
        managed = comfy.model_patcher.CoreModelPatcher(hosted, load_device=mm.get_torch_device(), offload_device=cpu)
        managed.load(mm.get_torch_device(), lowvram_model_memory=1 << 20)
        result["partial_lowvram"] = bool(hosted.model_lowvram)
        result["partial"] = relative_error(hosted(**inputs), want)
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
