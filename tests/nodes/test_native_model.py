"""ComfyUI's own MODEL + MODEL_PATCH through ``nodes/native_model.py``, and our own loader on ComfyUI's layers, in a
real ComfyUI (COMFYUI_DIR): the same numbers as the core's DiT, and the same frames out of the sampler.

Weights are tiny files (config ``comfy-tiny``) written by our own code under the official keys: the base DiT in
``models/diffusion_models`` (read by ComfyUI's Load Diffusion Model) and the InfiniteTalk adapter in
``models/model_patches``. ComfyUI's Load Model Patch fixes the 14B audio sizes, so the native graph reads the
adapter with a test-only node that builds ComfyUI's own patch classes sized from the file
(``helpers/comfy_test_nodes.py``), and takes seeded CLIP vision states (a ViT-H cannot be made tiny)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from helpers.comfy_tiny_weights import ADAPTER, BASE, write_tiny_files
from helpers.comfyui_server import SKIP_REASON, comfyui_dir, output_file, run_prompt, running_comfyui
from helpers.pack_import import REPO_ROOT
from safetensors.torch import load_file

pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(comfyui_dir() is None, reason=SKIP_REASON)]
HELPERS = REPO_ROOT / "tests" / "helpers"


def _host_python() -> str:
    return os.environ.get("COMFYUI_PYTHON", sys.executable)


def test_native_model_computes_what_our_dit_does_and_our_dit_loads_partially_on_comfyui_layers(tmp_path):
    """One forward: ComfyUI's model behind the adapter vs the core's DiT (1, 2 and 3 speakers, batch 2); the core's
    DiT built with ComfyUI's layers, fully and then partially loaded by ComfyUI's ModelPatcher."""
    done = subprocess.run([_host_python(), str(HELPERS / "native_forward_check.py"), str(tmp_path)],
                          cwd=comfyui_dir(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["native_config"] == "comfyui-wan-i2v-128x2"
    for speakers in (1, 2, 3):
        assert result[f"native_{speakers}"] < 1e-5, result
    assert result["host_layers"] == result["host_total"] > 0, result
    assert result["host_ops"] < 1e-6 and result["partial"] < 1e-6, result
    assert result["partial_lowvram"] is True, result


def _graph(native: bool) -> dict:
    graph = json.loads((REPO_ROOT / "workflows" / "api" / "talkgen_demo.json").read_text())
    sampler = next(i for i, n in graph.items() if n["class_type"] == "TalkGenSampler")
    loader = next(i for i, n in graph.items() if n["class_type"] == "TalkGenModelLoader")
    inputs = graph[sampler]["inputs"]
    graph["90"] = {"class_type": "TalkGenTestClipVisionOutput", "inputs": {"seed": 5, "tokens": 257, "width": 1280}}
    inputs.update(size="demo", steps=2, text_cfg=1.0, audio_cfg=2.0, chunk_frames=33, context_frames=9,
                  clip_vision_output=["90", 0], job_dir="native" if native else "own")
    if native:
        graph[loader] = {"class_type": "UNETLoader", "inputs": {"unet_name": BASE, "weight_dtype": "default"}}
        graph["91"] = {"class_type": "TalkGenTestTinyModelPatch", "inputs": {"name": ADAPTER, "audio_dim": 64}}
        inputs["model_patch"] = ["91", 0]
    else:
        graph[loader]["inputs"].update(model=BASE, adapter=ADAPTER)
    return graph


def _frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _chunk_latents(folder) -> list[torch.Tensor]:
    """The final latents of every chunk, from a named job folder (``job_dir``: one sub-folder per job key)."""
    (job,) = [path for path in folder.iterdir() if path.is_dir()]
    chunks = sorted(job.glob("chunk_*.safetensors"))
    return [next(iter(load_file(str(path)).values())) for path in chunks]


def test_native_model_and_our_loader_give_the_same_frames(tmp_path):
    """Both routes keep their chunks' latents (a named job folder): equal within float rounding, chunk by chunk
    (the context carried from chunk to chunk included). The videos are only compared in length: the sampler's
    mp4 is lossy H.264, where a one-grey-level change at its input moves the encoder's decisions."""
    models = tmp_path / "models"
    write_tiny_files(models / "diffusion_models", models / "model_patches")
    (tmp_path / "custom_nodes").mkdir()
    shutil.copy(HELPERS / "comfy_test_nodes.py", tmp_path / "custom_nodes" / "talkgen_test_nodes.py")
    videos = {}
    with running_comfyui(tmp_path) as url:
        for native in (False, True):
            graph = _graph(native)
            writer = next(i for i, n in graph.items() if n["class_type"] == "TalkGenVideoWriter")
            record = run_prompt(url, graph)[writer]["images"][0]
            videos[native] = _frames(output_file(tmp_path, record))
    own, native = _chunk_latents(tmp_path / "output" / "own"), _chunk_latents(tmp_path / "output" / "native")
    assert len(own) == len(native) >= 2
    for index, (ours, theirs) in enumerate(zip(own, native)):
        error = float((ours - theirs).abs().max() / ours.abs().max())
        assert error < 1e-4, (index, error)
    assert videos[False].shape == videos[True].shape and videos[False].std() > 5
