"""The embedded refiner: the trained :class:`~.model.RefinerDiT` with its landmark network, as the chain runs it.

:class:`EmbeddedRefiner` adds what the ``refiner`` strategy (:mod:`talkgen_core.sampling.strategies.refiner_chain`)
asks of its model: :meth:`~EmbeddedRefiner.chunk_condition` turns a chunk's source frames (the low-resolution
video seen at the output size) into the condition (the frames brought back to the low resolution and encoded,
the latents degraded as in training, the landmark network's pose on the low-resolution frames as heatmaps at the
output size) and :meth:`~EmbeddedRefiner.prefixed_audio` gives the prefix its null audio. The weight files
(``demo-refiner.safetensors``, ``demo-landmarks.safetensors``, made by :mod:`talkgen_core.train.refiner`) carry the
scale, chunk geometry and pose width they were trained with in their metadata; ``demo-refiner-decoder.safetensors``
is the demo VAE's decoder fitted to the high resolution (:func:`refiner_vae`: the encoder, so every latent, is the
demo VAE's own).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from safetensors.torch import load_file

from talkgen_core.models.demo import CONFIG_METADATA_KEY, WEIGHTS_DIR
from talkgen_core.models.dit import WanDiT, build_dit

from .degrade import degrade
from .detectors import get_detector
from .landmark_model import LandmarkNet
from .model import RefinerDiT, prefixed_audio
from .pose import pose_maps

REFINER_FILE = "demo-refiner.safetensors"
LANDMARK_FILE = "demo-landmarks.safetensors"
DECODER_FILE = "demo-refiner-decoder.safetensors"
REFINER_METADATA_KEY = "talkgen_refiner"  # JSON: scale, chunk_frames, context_frames, pose_sigma, landmarks, ...
DECODER_PARTS = ("decoder.", "conv2.")  # the VAE's decoder side: what the high-resolution decoder file replaces


class EmbeddedRefiner(RefinerDiT):
    """A RefinerDiT with its landmark network and the geometry it was trained for (``info``: the files' metadata:
    ``scale``, ``chunk_frames``, ``context_frames``, ``pose_sigma``, ``landmarks``)."""

    def __init__(self, dit: WanDiT, landmark_net: LandmarkNet, info: dict) -> None:
        super().__init__(dit, len(info["landmarks"]))
        self.landmark_net = landmark_net
        self.info = dict(info)
        self.scale = int(info["scale"])

    def landmarks_of(self, low_res: torch.Tensor, detector: str = "net") -> torch.Tensor:
        """Low-resolution frames ``[F, 3, h, w]`` in [-1, 1] -> landmarks at the output size ``[F, K, 2]`` (x, y):
        the ``detector``'s (:mod:`.detectors`), moved from low-resolution pixel centres to output pixel centres."""
        points = get_detector(detector, self.landmark_net)(low_res)
        return points * self.scale + (self.scale - 1) / 2.0

    def chunk_condition(self, vae, source: torch.Tensor, prefix: torch.Tensor, noise_level: float,
                        generator: torch.Generator, detector: str = "net") -> torch.Tensor:
        """Source frames ``[1, 3, F, H, W]`` at the output size + the prefix latent ``[1, z, 1, h, w]`` -> the
        condition ``[1, 4 + z + K s^2, 1 + T, h, w]``; the degradation's noise is drawn from ``generator``, the
        pose found by ``detector`` on the low-resolution frames."""
        frames = source[0].transpose(0, 1).float()  # [F, 3, H, W]
        low = F.avg_pool2d(frames, self.scale)  # [F, 3, H / s, W / s]: back at the low resolution
        latents = vae.encode(low.transpose(0, 1)[None]).to(prefix.device, torch.float32)  # [1, z, T, h / s, w / s]
        degraded = degrade(latents, self.scale, noise_level, generator)
        points = self.landmarks_of(low.to(prefix.device), detector)
        maps = pose_maps(points, frames.shape[-2], frames.shape[-1], float(self.info["pose_sigma"]))
        return self.condition(prefix, degraded.to(prefix.device), pose_maps=maps.transpose(0, 1)[None])

    @staticmethod
    def prefixed_audio(audio: torch.Tensor) -> torch.Tensor:
        return prefixed_audio(audio)


def refiner_info(path: Union[str, Path]) -> dict:
    """The training metadata of a refiner or landmark file (a clear error for a file made otherwise)."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if REFINER_METADATA_KEY not in metadata:
        raise ValueError(f"{path} is not a talkgen refiner file (no {REFINER_METADATA_KEY!r} metadata); make one with "
                         "python -m talkgen_core.train.refiner")
    return {**json.loads(metadata[REFINER_METADATA_KEY]), "dit_config": metadata.get(CONFIG_METADATA_KEY, "demo")}


def decoder_tensors(vae: nn.Module) -> dict[str, torch.Tensor]:
    """The VAE's decoder-side tensors (:data:`DECODER_PARTS`), as a weight file holds them."""
    return {k: v.detach().clone().contiguous() for k, v in vae.state_dict().items() if k.startswith(DECODER_PARTS)}


def refiner_vae(vae: nn.Module, weights_dir: Optional[Path] = None) -> nn.Module:
    """A copy of the demo ``vae`` with the refiner's high-resolution decoder (from ``weights_dir``, default the
    shipped weights); the copy shares nothing with ``vae``."""
    path = Path(weights_dir if weights_dir is not None else WEIGHTS_DIR) / DECODER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the embedded refiner needs {path.name} in {path.parent}; make it with "
                                "python -m talkgen_core.train.refiner")
    tensors = load_file(str(path))
    own = decoder_tensors(vae)
    if set(tensors) != set(own) or any(tensors[k].shape != own[k].shape for k in own):
        raise ValueError(f"{path} does not hold this VAE's decoder (made for another VAE config?)")
    decoded = copy.deepcopy(vae)
    decoded.load_state_dict(tensors, strict=False)
    return decoded.requires_grad_(False).eval()


def refiner_files(weights_dir: Optional[Path] = None) -> tuple[Path, Path]:
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    return folder / REFINER_FILE, folder / LANDMARK_FILE


def has_embedded_refiner(weights_dir: Optional[Path] = None) -> bool:
    return all(p.is_file() for p in refiner_files(weights_dir))


def load_landmark_net(weights_dir: Optional[Path] = None) -> LandmarkNet:
    """The shipped landmark network (or the one in ``weights_dir``), in eval mode on the CPU."""
    path = refiner_files(weights_dir)[1]
    if not path.is_file():
        raise FileNotFoundError(f"the landmark network {path.name} is not in {path.parent}; make it with "
                                "python -m talkgen_core.train.refiner")
    info = refiner_info(path)
    net = LandmarkNet(len(info["landmarks"]), int(info["landmark_width"]))
    net.load_state_dict(load_file(str(path)))
    return net.eval().requires_grad_(False)


def load_embedded_refiner(device: Union[str, torch.device] = "cpu",
                          weights_dir: Optional[Path] = None) -> EmbeddedRefiner:
    """The shipped embedded refiner (or the one in ``weights_dir``), in eval mode on ``device``."""
    refiner_path, landmark_path = refiner_files(weights_dir)
    missing = [p.name for p in (refiner_path, landmark_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the embedded refiner needs {', '.join(missing)} in {refiner_path.parent}; make them "
                                "with python -m talkgen_core.train.refiner, or refine with the training-free route")
    info = refiner_info(refiner_path)
    net = load_landmark_net(weights_dir)
    refiner = EmbeddedRefiner(build_dit(info["dit_config"], seed=0), net, info)
    tensors = {f"landmark_net.{k}": v for k, v in net.state_dict().items()} | load_file(str(refiner_path))
    refiner.load_state_dict(tensors)  # strict: a file of another layout names its first missing tensor
    return refiner.to(device).eval().requires_grad_(False)
