"""The embedded refiner's training run (InfinityHuman's refiner on the demo's domain), on a time budget.

    python -m talkgen_core.train.refiner --base talkgen_core/weights --minutes 45 --out runs/refiner

1. ``data``: solo clips of the demo recipe rendered at twice the demo size (faces anywhere, head motion, blinks),
   each encoded by the demo VAE at the high resolution (the targets) and, area-downsampled, at the demo size (the
   low-resolution latents), with the renderer's landmarks, the audio features and face / mouth / eye coverage.
2. ``landmarks``: a small landmark network (:mod:`talkgen_core.refine.landmark_model`) learns the renderer's
   landmarks on fresh synthetic frames at the demo size; it gives the pose at inference.
3. ``decoder``: the demo VAE's decoder (its encoder, and so every latent, unchanged; the temporal upsampling
   too) learns to reconstruct single frames at the high resolution: trained at the demo size, it decodes twice
   that size with about twice the face error of a bicubic upscale of its own low-resolution decode.
4. ``refiner``: :class:`~talkgen_core.refine.model.RefinerDiT`, its DiT initialised from the demo DiT, learns
   conditional flow matching on chunks laid out as the refiner chain samples them: the reference's latent as the
   prefix, the chunk's leading latents pinned clean (the first latent in a first chunk, the clip's own past in a
   continuation), the degraded low-resolution latents (noise level drawn in ``[0, alpha_max]``) and jittered
   ground-truth landmark maps as conditions; face, mouth and eyes weighted up in the loss.

The weights are written as ``demo-refiner.safetensors``, ``demo-landmarks.safetensors`` and
``demo-refiner-decoder.safetensors`` (with their configs in the files' metadata) and the run record (config,
steps, minutes per phase, losses) as ``demo-refiner.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

from talkgen_core.audio.encode import encode_speech
from talkgen_core.models.demo import CONFIG_METADATA_KEY, build_demo_networks, demo_config_names
from talkgen_core.refine.degrade import degrade
from talkgen_core.refine.embedded import (DECODER_FILE, LANDMARK_FILE, REFINER_FILE, REFINER_METADATA_KEY,
                                         decoder_tensors)
from talkgen_core.refine.landmark_model import LandmarkNet, train_landmark_net
from talkgen_core.refine.model import RefinerDiT, pose_cells, prefixed_audio
from talkgen_core.refine.pose import pose_maps
from talkgen_core.registry import lookup_config
from talkgen_core.audio.windows import frame_windows
from talkgen_core.sampling.chunks import latent_frames
from talkgen_core.sampling.schedules import NUM_TRAIN_TIMESTEPS
from talkgen_core.synth import make_clip, render_reference
from talkgen_core.synth.landmarks import LANDMARKS, person_landmarks
from talkgen_core.synth.render import PersonTrack
from talkgen_core.train.config import get_train_config
from talkgen_core.train.data import render_clip_bank, solo_placement, to_model_pixels
from talkgen_core.train.latents import encode_video
from talkgen_core.train.objective import noise_fractions
from talkgen_core.train.state import EMA
from talkgen_core.train.vae_stage import decode_raw, encode_mean, sample_vae_batch

RECORD_FILE = "demo-refiner.json"


@dataclass(frozen=True)
class RefinerConfig:
    name: str
    data: str = "demo-v2"  # the demo recipe whose synthetic faces (placements, motion) the clips follow
    clips: int = 32
    clip_frames: int = 125
    scale: int = 2  # high resolution = scale x the data recipe's size
    chunk_frames: int = 33  # the refiner chain's chunk (1 + 4k video frames)
    context_frames: int = 5  # frames carried from the previous chunk (clean latents)
    first_chunk_share: float = 0.3  # samples that start a video (latent 0: the reference frame's own)
    portrait_prefix: float = 0.7  # prefix = the neutral portrait's latent (else the clip's first frame's)
    alpha_max: float = 0.5  # the degraded LR latents' noise level is drawn in [0, alpha_max]
    pose_sigma: float = 2.0  # heatmap width at the high resolution, in pixels
    pose_jitter: float = 0.7  # ground-truth landmarks jittered by this many pixels (the network's error)
    pose_dropout: float = 0.1
    audio_dropout: float = 0.1
    face_weight: float = 1.0
    mouth_weight: float = 4.0
    eye_weight: float = 4.0
    batch: int = 4
    lr: float = 2e-4
    pose_lr: float = 1e-3
    warmup_steps: int = 50
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    landmark_minutes: float = 3.0
    landmark_width: int = 24
    decoder_minutes: float = 5.0
    decoder_clips: int = 48  # short clips of other identities, single frames cropped from them
    decoder_clip_frames: int = 25
    decoder_crop: int = 64  # square crops at the high resolution (the VAE is convolutional)
    decoder_batch: int = 8
    decoder_lr: float = 1e-3
    seed: int = 0
    threads: int = 1


DEMO_REFINER = RefinerConfig(name="demo")
SMOKE_REFINER = RefinerConfig(name="smoke", data="smoke-v2", clips=2, clip_frames=25, chunk_frames=13,
                              batch=2, warmup_steps=2, landmark_minutes=0.02, landmark_width=8,
                              decoder_minutes=0.01, decoder_clips=2, decoder_crop=32, decoder_batch=2)
REFINER_CONFIGS = {c.name: c for c in (DEMO_REFINER, SMOKE_REFINER)}


def get_refiner_config(name: str) -> RefinerConfig:
    return lookup_config(REFINER_CONFIGS, name, "refiner training")


@dataclass(frozen=True)
class RefinerBank:
    """N clips of F frames: HR latents ``[N, z, L, h, w]``, LR latents ``[N, z, L, h / s, w / s]``, the neutral
    portrait's HR latent ``[N, z, 1, h, w]``, the jittered landmarks' pose cells per stream latent
    ``[N, K s^2, L, h, w]`` (float16), audio features ``[N, F, L_a, D]`` and face / mouth / eye coverage per HR
    latent cell ``[N, 3, F, h, w]``."""

    hr: Tensor
    lr: Tensor
    portrait: Tensor
    pose: Tensor
    audio: Tensor
    regions: Tensor


def _coverage(mask: Tensor, stride: int) -> Tensor:
    """``[F, H, W]`` float coverage -> mean per latent cell ``[F, H / stride, W / stride]``."""
    return F.avg_pool2d(mask.float()[:, None], stride)[:, 0]


@torch.no_grad()
def build_refiner_bank(vae, wav2vec2, config: RefinerConfig) -> RefinerBank:
    """Render and encode the clips (the pose cells are made once here: building heatmaps per batch would cost as
    much as the training step)."""
    data = get_train_config(config.data)
    size = data.size * config.scale
    jitter = torch.Generator().manual_seed(config.seed)
    hr, lr, portraits, cells, audio, regions = [], [], [], [], [], []
    for i in range(config.clips):
        placement = solo_placement(data, i)
        clip = make_clip(i, num_frames=config.clip_frames, size=size, fps=data.fps, placement=placement)
        pixels = to_model_pixels(clip.frames).permute(1, 0, 2, 3)[None]  # [1, 3, F, H, W]
        hr.append(encode_video(vae, pixels)[0])
        small = F.avg_pool2d(pixels[0].transpose(0, 1), config.scale).transpose(0, 1)[None]
        lr.append(encode_video(vae, small)[0])
        portrait = to_model_pixels(render_reference(clip.identity, size, placement))
        portraits.append(encode_video(vae, portrait[None, :, None])[0])
        track = PersonTrack(clip.identity, clip.mouth_opening, clip.head_pose, clip.blink, placement)
        points = person_landmarks(track, size, size)
        points = points + config.pose_jitter * torch.randn(points.shape, generator=jitter)
        maps = pose_maps(points, size, size, config.pose_sigma).transpose(0, 1)[None]  # [1, K, F, H, W]
        cells.append(pose_cells(maps, vae.spatial_stride)[0].half())
        audio.append(encode_speech(wav2vec2, clip.audio, fps=clip.fps, sample_rate=clip.sample_rate).float())
        stride = vae.spatial_stride
        assert clip.eye_mask is not None
        regions.append(torch.stack([_coverage(m, stride) for m in (clip.face_mask, clip.mouth_mask, clip.eye_mask)]))
    return RefinerBank(torch.stack(hr), torch.stack(lr), torch.stack(portraits), torch.stack(cells),
                       torch.stack(audio), torch.stack(regions))


@dataclass(frozen=True)
class RefinerBatch:
    x0: Tensor  # [B, z, 1 + T, h, w]: prefix then the chunk's clean latents
    cond: Tensor  # [B, 4 + z + K s^2, 1 + T, h, w]
    audio: Tensor  # [B, 1, 4 + F, 5, L_a, D]
    clean: Tensor  # [B, 1, 1 + T, 1, 1] bool: the prefix and the pinned context
    weights: Tensor  # [B, 1, 1 + T, h, w] loss weights, zero where clean


def _latent_max(coverage: Tensor) -> Tensor:
    """Per-frame coverage ``[C, F, h, w]`` (``F = 4 (T - 1) + 1``) -> ``[C, T, h, w]``: frame 0, then the maximum of
    each group of 4 (a mouth that opens anywhere in the group counts)."""
    rest = coverage[:, 1:].unflatten(1, (-1, 4)).amax(dim=2)
    return torch.cat([coverage[:, :1], rest], dim=1)


def sample_refiner_batch(bank: RefinerBank, refiner: RefinerDiT, config: RefinerConfig,
                         generator: torch.Generator) -> RefinerBatch:
    frames, t = config.chunk_frames, latent_frames(config.chunk_frames)
    context = latent_frames(config.context_frames)
    x0s, degraded, prefixes, poses, audios, cleans, regions = [], [], [], [], [], [], []
    for _ in range(config.batch):
        n = int(torch.randint(bank.hr.shape[0], (1,), generator=generator))
        first = float(torch.rand((), generator=generator)) < config.first_chunk_share
        j = 0 if first else int(torch.randint(1, bank.hr.shape[2] - t + 1, (1,), generator=generator))
        start = 4 * j
        own_first = float(torch.rand((), generator=generator)) >= config.portrait_prefix
        prefix = bank.hr[n, :, :1] if own_first else bank.portrait[n]
        x0s.append(torch.cat([prefix, bank.hr[n, :, j : j + t]], dim=1))
        alpha = float(torch.rand((), generator=generator)) * config.alpha_max
        degraded.append(degrade(bank.lr[n : n + 1, :, j : j + t], config.scale, alpha, generator)[0])
        prefixes.append(prefix)
        keep = float(torch.rand((), generator=generator)) >= config.pose_dropout
        poses.append(bank.pose[n, :, j : j + t].float() * float(keep))
        keep_audio = float(torch.rand((), generator=generator)) >= config.audio_dropout
        audios.append(frame_windows(bank.audio[n], start, frames)[None] * float(keep_audio))
        clean = torch.zeros(1 + t, dtype=torch.bool)
        clean[: 1 + (1 if first else context)] = True
        cleans.append(clean)
        regions.append(_latent_max(bank.regions[n, :, start : start + frames]))
    cond = refiner.condition(torch.stack(prefixes), torch.stack(degraded), cells=torch.stack(poses))
    clean = torch.stack(cleans).view(config.batch, 1, 1 + t, 1, 1)
    region = F.pad(torch.stack(regions), (0, 0, 0, 0, 1, 0))  # [B, 3, 1 + T, h, w]: nothing at the prefix
    weights = 1.0 + config.face_weight * region[:, :1] + config.mouth_weight * region[:, 1:2] \
        + config.eye_weight * region[:, 2:3]
    return RefinerBatch(torch.stack(x0s), cond, prefixed_audio(torch.stack(audios)), clean,
                        weights * (~clean).float())


def train_high_resolution_decoder(vae, config: RefinerConfig, started: float) -> list[float]:
    """Fit ``vae``'s decoder (in place; encoder, latent normalisation and temporal layers frozen) to single frames
    at the high resolution for ``decoder_minutes`` from ``started``; the weighted L1 of every step."""
    data = replace(get_train_config(config.data), size=get_train_config(config.data).size * config.scale,
                   clip_frames=config.decoder_clip_frames, chunk_frames=config.decoder_clip_frames - 4,
                   stage1_frames=1, vae_frames=1, context_frames=1, vae_crop=config.decoder_crop,
                   vae_image_batch=config.decoder_batch)
    bank = render_clip_bank(data, config.clips, config.decoder_clips)  # other identities than the refiner's clips
    vae.requires_grad_(False)
    trained = [p for name, p in vae.named_parameters() if name in decoder_tensors(vae) and ".time_conv." not in name]
    for p in trained:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(trained, lr=config.decoder_lr, betas=(0.9, 0.99), weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed + 1)
    losses: list[float] = []
    while time.monotonic() - started < config.decoder_minutes * 60.0 or not losses:
        batch = sample_vae_batch(bank, data, generator, single_frames=True)
        with torch.no_grad():
            latents = encode_mean(vae, batch.frames)
        recon = decode_raw(vae, latents)
        loss = ((recon - batch.frames).abs() * batch.weights).sum() / (batch.weights.sum() * 3.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    vae.requires_grad_(False).eval()
    return losses


def refiner_loss(refiner: RefinerDiT, batch: RefinerBatch, shift: float, generator: torch.Generator) -> Tensor:
    """Weighted flow-matching velocity error over the generated latents (clean ones pinned, out of the loss)."""
    x0 = batch.x0
    b = x0.shape[0]
    noise = torch.randn(x0.shape, generator=generator)
    s = noise_fractions(b, shift, generator).view(b, 1, 1, 1, 1)
    xt = torch.where(batch.clean, x0, (1.0 - s) * x0 + s * noise)
    text = torch.zeros(b, 1, refiner.config.text_dim)
    v = refiner(xt, s.flatten() * NUM_TRAIN_TIMESTEPS, text, batch.cond, audio=batch.audio)
    err = (v - (noise - x0)).pow(2)
    return (err * batch.weights).sum() / (batch.weights.sum() * x0.shape[1]).clamp_min(1e-8)


@dataclass
class RefinerRecord:
    config: dict
    base: dict  # the demo weights the DiT started from
    clips: int
    steps: dict
    seconds: dict
    final_loss: dict


def refiner_metadata(config: RefinerConfig) -> dict[str, str]:
    """What a refiner file tells the chain (:func:`talkgen_core.refine.embedded.load_embedded_refiner`)."""
    return {REFINER_METADATA_KEY: json.dumps({
        "scale": config.scale, "chunk_frames": config.chunk_frames, "context_frames": config.context_frames,
        "pose_sigma": config.pose_sigma, "landmarks": list(LANDMARKS), "landmark_width": config.landmark_width,
        "landmark_size": get_train_config(config.data).size,
    })}


def train_refiner(config: RefinerConfig, base_dir: Path, out_dir: Path, minutes: float,
                  log=sys.stderr) -> RefinerRecord:
    """Data, then the landmark network, then the refiner until ``minutes`` have passed; weights into ``out_dir``."""
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    base = build_demo_networks("cpu", base_dir)
    if base.random_weights:
        raise FileNotFoundError(f"no demo weights in {base_dir}: the refiner starts from a trained demo DiT")
    data = get_train_config(config.data)
    bank = build_refiner_bank(base.vae, base.wav2vec2, config)
    seconds = {"data": time.monotonic() - started}
    log.write(f"[data] {config.clips} clips in {seconds['data']:.0f} s\n")

    phase = time.monotonic()
    torch.manual_seed(config.seed)
    landmark_net = LandmarkNet(len(LANDMARKS), config.landmark_width)
    landmark_losses: list[float] = []
    deadline = phase + config.landmark_minutes * 60.0
    rng = np.random.default_rng(config.seed)
    while time.monotonic() < deadline or not landmark_losses:  # rounds of 100 steps on fresh batches
        landmark_losses += train_landmark_net(landmark_net, 100, size=data.size, seed=int(rng.integers(1 << 30)),
                                              lr=3e-3 if len(landmark_losses) < 600 else 1e-3).losses
        log.write(f"\r[landmarks] step {len(landmark_losses)} loss {landmark_losses[-1]:.5f}")
    seconds["landmarks"] = time.monotonic() - phase
    log.write("\n")

    phase = time.monotonic()
    vae = copy.deepcopy(base.vae)
    decoder_losses = train_high_resolution_decoder(vae, config, phase)
    seconds["decoder"] = time.monotonic() - phase
    log.write(f"[decoder] {len(decoder_losses)} steps, L1 {np.mean(decoder_losses[-50:]):.4f}\n")

    phase = time.monotonic()
    refiner = RefinerDiT(copy.deepcopy(base.dit), len(LANDMARKS)).train().requires_grad_(True)
    ema = EMA(refiner, config.ema_decay)
    optimizer = torch.optim.AdamW([
        {"params": list(refiner.dit.parameters()), "lr": config.lr, "base_lr": config.lr},
        {"params": list(refiner.pose.parameters()), "lr": config.pose_lr, "base_lr": config.pose_lr},
    ], betas=(0.9, 0.99), weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    rest = minutes * 60.0 - (time.monotonic() - started)
    steps, window, step_s = 0, [], 0.0
    while time.monotonic() - phase + step_s < rest or steps == 0:  # the last step ends inside the budget
        step_started = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * min(1.0, (steps + 1) / config.warmup_steps)
        batch = sample_refiner_batch(bank, refiner, config, generator)
        loss = refiner_loss(refiner, batch, data.time_shift, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(refiner.parameters(), config.grad_clip)
        optimizer.step()
        ema.update(refiner)
        steps += 1
        window = (window + [float(loss.detach())])[-50:]
        step_s = time.monotonic() - step_started
        log.write(f"\r[refiner] step {steps} loss {window[-1]:.4f} {time.monotonic() - phase:.0f}/{rest:.0f} s")
    seconds["refiner"] = time.monotonic() - phase
    log.write("\n")

    names = demo_config_names(base_dir)
    metadata = {CONFIG_METADATA_KEY: names["dit"], **refiner_metadata(config)}
    tensors = {k: v.detach().clone().contiguous() for k, v in ema.module.state_dict().items()}
    save_file(tensors, str(out_dir / REFINER_FILE), metadata=metadata)
    save_file({k: v.detach().clone().contiguous() for k, v in landmark_net.state_dict().items()},
              str(out_dir / LANDMARK_FILE), metadata=refiner_metadata(config))
    save_file(decoder_tensors(vae), str(out_dir / DECODER_FILE), metadata={CONFIG_METADATA_KEY: names["vae"]})
    record = RefinerRecord(
        config=asdict(config), base={"weights": str(base_dir), "configs": names}, clips=config.clips,
        steps={"landmarks": len(landmark_losses), "decoder": len(decoder_losses), "refiner": steps},
        seconds={k: round(v, 1) for k, v in seconds.items()},
        final_loss={"landmarks": float(np.mean(landmark_losses[-50:])), "decoder": float(np.mean(decoder_losses[-50:])),
                    "refiner": float(np.mean(window))},
    )
    (out_dir / RECORD_FILE).write_text(json.dumps(asdict(record), indent=1))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m talkgen_core.train.refiner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="folder with the demo weights the refiner starts from")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget of the whole run")
    parser.add_argument("--out", type=Path, required=True, help="folder for the weights and the run record")
    parser.add_argument("--config", default="demo", choices=sorted(REFINER_CONFIGS))
    parser.add_argument("--clips", type=int, default=None, help="override the config's clip count")
    args = parser.parse_args(argv)
    config = get_refiner_config(args.config)
    if args.clips is not None:
        config = replace(config, clips=args.clips)
    record = train_refiner(config, args.base, args.out, args.minutes)
    print(json.dumps(asdict(record), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
