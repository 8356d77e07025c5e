"""ComfyUI's native Wan VAE behind the core's VideoAutoencoder protocol, with a stand-in that has the host's
layouts: encode(IMAGE [T, H, W, 3] in [0, 1]) -> raw latents [1, 16, t, h, w]; decode -> [1, T, H, W, 3]."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.comfyui_server import SKIP_REASON, comfyui_dir
from helpers.pack_import import import_pack_like_comfyui

from talkgen_core.models.vae import (
    WAN21_LATENT_MEAN,
    WAN21_LATENT_STD,
    build_vae,
    denormalize_latents,
    normalize_latents,
)


class HostLikeVAE:
    """Wraps our tiny VAE the way ComfyUI's VAE object presents the Wan VAE (raw latents, IMAGE layout)."""

    def __init__(self) -> None:
        self.inner = build_vae("tiny")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        frames = images.permute(3, 0, 1, 2)[None] * 2 - 1  # [1, 3, T, H, W]
        return denormalize_latents(self.inner.encode(frames), WAN21_LATENT_MEAN, WAN21_LATENT_STD)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        frames = self.inner.decode(normalize_latents(latents, WAN21_LATENT_MEAN, WAN21_LATENT_STD))
        return ((frames[0].permute(1, 2, 3, 0) + 1) / 2)[None]  # [1, T, H, W, 3]


def test_native_vae_adapter_matches_the_core_vae(tmp_path):
    pack = import_pack_like_comfyui(tmp_path)
    host_vae = HostLikeVAE()
    adapter = pack.nodes.vae_adapter.as_video_autoencoder(host_vae)
    assert adapter is not host_vae and adapter.z_dim == 16
    frames = torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latents = adapter.encode(frames)
    assert torch.allclose(latents, host_vae.inner.encode(frames), atol=1e-5)
    decoded = adapter.decode(latents)
    assert decoded.shape == (1, 3, 5, 16, 16)
    assert torch.allclose(decoded, host_vae.inner.decode(latents), atol=1e-5)
    assert pack.nodes.vae_adapter.as_video_autoencoder(host_vae.inner) is host_vae.inner


# Run under COMFYUI_PYTHON with ComfyUI importable: ComfyUI's own VAE class (comfy.sd.VAE) around our tiny VAE's
# weights, behind the adapter; prints the largest differences as JSON.
HOST_STREAM_CHECK = r"""
import json, sys
from pathlib import Path
comfy_dir, tests_dir, work = sys.argv[1:4]
sys.path[:0] = [comfy_dir, tests_dir]
import torch
from comfy.cli_args import args
args.cpu = True  # before comfy.model_management reads it: the test runs on the CPU everywhere
import comfy.sd
from helpers.pack_import import import_pack_like_comfyui

pack = import_pack_like_comfyui(Path(work))  # puts the pack's core on the path, as ComfyUI's loading does
from talkgen_core.models.vae import WAN21_LATENT_MEAN, WAN21_LATENT_STD, build_vae, denormalize_latents
torch.manual_seed(0)
ours = build_vae("tiny")
with torch.no_grad():
    for name, p in ours.named_parameters():
        if name.endswith("gamma"):
            p.uniform_(0.5, 1.5)
host_vae = comfy.sd.VAE(sd={k: v.clone() for k, v in ours.state_dict().items()})
adapter = pack.nodes.vae_adapter.as_video_autoencoder(host_vae)
latents = torch.randn(1, 16, 7, 4, 6, generator=torch.Generator().manual_seed(3))
one_pass = adapter.decode(latents)
raw = denormalize_latents(latents, WAN21_LATENT_MEAN, WAN21_LATENT_STD)
state = adapter.new_decode_state()
pieces = [adapter.decode_chunk(latents[:, :, :3], state)]  # chunk 0: all its latents
for lo, hi in ((3, 5), (5, 6), (6, 7)):  # later chunks: only the new latents, as the sampler streams them
    state.to("cpu")
    pieces.append(adapter.decode_chunk(latents[:, :, lo:hi], state))
streamed = torch.cat(pieces, dim=2)
print(json.dumps({
    "adapter": type(adapter).__name__,
    "shapes": [list(one_pass.shape), list(streamed.shape)],
    "piece_frames": [p.shape[2] for p in pieces],
    "stream_vs_one_pass": (streamed - one_pass).abs().max().item(),
    "comfy_vs_ours": (one_pass - ours.decode(raw)).abs().max().item(),  # the tiny config: mean 0, std 1
    "spread": one_pass.std().item(),
}))
"""


@pytest.mark.comfyui
@pytest.mark.skipif(comfyui_dir() is None, reason=SKIP_REASON)
def test_comfyui_wan_vae_streams_only_the_new_latents_and_equals_its_one_pass_decode(tmp_path):
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    tests_dir = Path(__file__).resolve().parents[1]
    done = subprocess.run([python, "-c", HOST_STREAM_CHECK, str(comfyui_dir()), str(tests_dir), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=str(comfyui_dir()))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["adapter"] == "ComfyStreamingVAEAdapter"
    assert result["shapes"] == [[1, 3, 25, 32, 48]] * 2
    assert result["piece_frames"] == [9, 8, 4, 4]
    assert result["spread"] > 0.05
    assert result["stream_vs_one_pass"] < 1e-5
    assert result["comfy_vs_ours"] < 1e-4  # ComfyUI's Wan VAE and ours agree on the same weights


def test_other_host_vaes_keep_the_plain_adapter(tmp_path):
    pack = import_pack_like_comfyui(tmp_path)
    adapter = pack.nodes.vae_adapter.as_video_autoencoder(HostLikeVAE())
    assert not hasattr(adapter, "new_decode_state")  # each chunk then decodes as a new stream
