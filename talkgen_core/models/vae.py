"""The Wan2.1 causal video VAE with streaming encode and decode.

Contract (docs/architecture.md)::

    encode: frames  [B, 3, T, H, W] in [-1, 1]  ->  latents [B, z, 1 + (T - 1) // 4, H / 8, W / 8], normalised
    decode: latents [B, z, t, h, w]              ->  frames  [B, 3, 1 + 4 (t - 1), 8 h, 8 w], clamped to [-1, 1]

Latents are normalised per channel, ``z_norm = (z - mean) / std``, with the published Wan2.1 statistics.

Streaming. Every temporal layer is causal, so a video is processed in chunks with each layer's recent
history carried in an explicit state object (:class:`DecodeState`, :class:`EncodeState`). Decoding runs one
latent frame at a time and encoding one group of frames at a time (the first frame alone, then 4 at a time),
so peak memory depends on the frame size, not on the video length, and chunked output equals a single pass::

    vae = build_vae("tiny")                          # or load_vae("Wan2.1_VAE.pth", "cuda", torch.bfloat16)
    for frames in vae.decode_stream(latent_chunks):  # a latent tensor, or any iterable of latent chunks
        writer.write(frames)                         # [B, 3, n, H, W]; nothing accumulates
    state = vae.new_decode_state()                   # or drive it by hand, chunk by chunk
    first = vae.decode_chunk(z[:, :, :1], state)     # 1 frame
    rest = vae.decode_chunk(z[:, :, 1:3], state)     # 8 frames, continuing the same stream

Large frames can be tiled (``tiling=Tiling(tile=256, overlap=64)``); seams are blended linearly.

Odd sizes. ``encode`` rejects T not of the form 1 + 4k and H, W not multiples of 8 with an error naming the
fix: :func:`pad_video` pads (repeating the last frame and the bottom/right edge pixels) and
:func:`crop_video` crops the decoded frames back. ``encode(..., pad=True)`` pads for you; the extra decoded
frames/pixels are then the caller's to crop (``crop_video(decoded, VideoSize(T, H, W))``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from talkgen_core.registry import lookup_config

from .checkpoint import load_state_dict_file
from .vae_layers import ENCODE_PIECE_FRAMES, CausalCache, CausalConv3d, Decoder3d, Encoder3d, bind_cache_keys
from .vae_tiling import Tile, Tiling, blend_tiles, tile_grid

__all__ = [
    "VAE_CONFIGS",
    "DecodeState",
    "EncodeState",
    "StreamCaches",
    "Tiling",
    "VAEConfig",
    "VideoAutoencoder",
    "VideoSize",
    "WanVAE",
    "build_vae",
    "crop_video",
    "denormalize_latents",
    "load_vae",
    "normalize_latents",
    "pad_video",
]

WAN21_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2777, 1.5430, 2.3030, 1.4040,
    0.6080, 1.0658, 0.9946, 1.2025, 1.3116, 1.2700, 1.4390, 1.4720,
)  # fmt: skip


@dataclass(frozen=True)
class VAEConfig:
    """Sizes of a Wan2.1-style VAE. ``latent_mean``/``latent_std`` normalise the latent channels."""

    name: str
    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latent_mean: tuple[float, ...] = WAN21_LATENT_MEAN
    latent_std: tuple[float, ...] = WAN21_LATENT_STD
    dropout: float = 0.0
    # Latents a decode stream holds its first latent for before latent 1 (frames dropped). Wan's decoder keeps
    # a stream's first frame out of its temporal upsamplers' history, so latent 1 is upsampled against zeros;
    # the official weights are trained that way (0), a decoder that interpolates between latents needs one
    # latent per temporal upsampler to fill that history.
    stream_start_hold: int = 0

    def __post_init__(self) -> None:
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError("temporal_downsample needs one flag per downsampling level (len(dim_mult) - 1)")
        if len(self.latent_mean) != self.z_dim or len(self.latent_std) != self.z_dim:
            raise ValueError(f"latent_mean and latent_std need z_dim={self.z_dim} values each")
        if any(s <= 0 for s in self.latent_std):
            raise ValueError("latent_std values must be positive")
        if self.stream_start_hold < 0:
            raise ValueError(f"stream_start_hold must be >= 0, got {self.stream_start_hold}")

    @property
    def temporal_stride(self) -> int:
        return 2 ** sum(self.temporal_downsample)

    @property
    def spatial_stride(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)


VAE_CONFIGS: dict[str, VAEConfig] = {
    "wan21": VAEConfig(name="wan21"),
    # Same structure and strides, narrow enough for CPU tests. Untrained weights have no published latent
    # statistics, so its normalisation is the identity.
    "tiny": VAEConfig(name="tiny", base_dim=8, latent_mean=(0.0,) * 16, latent_std=(1.0,) * 16),
    # The embedded demo model's VAE: "tiny" whose trained decoder interpolates between latents
    # (talkgen_core.train.vae_stage.inflate_temporal_init), so its decode streams start with a hold.
    "demo": VAEConfig(name="demo", base_dim=8, latent_mean=(0.0,) * 16, latent_std=(1.0,) * 16,
                      stream_start_hold=2),
    # Demo v2's VAE: half as wide again, so the eyes survive (the demo weights record which one they are).
    "demo-v2": VAEConfig(name="demo-v2", base_dim=12, latent_mean=(0.0,) * 16, latent_std=(1.0,) * 16,
                         stream_start_hold=2),
}


@runtime_checkable
class VideoAutoencoder(Protocol):
    """What the sampler needs from a video VAE (implemented by :class:`WanVAE` and the ComfyUI adapter)."""

    z_dim: int
    temporal_stride: int
    spatial_stride: int

    def encode(self, frames: Tensor) -> Tensor:
        """[B, 3, T, H, W] in [-1, 1] -> normalised latents [B, z, 1 + (T - 1) // ts, H / ss, W / ss]."""
        ...

    def decode(self, latents: Tensor) -> Tensor:
        """Normalised latents [B, z, t, h, w] -> frames [B, 3, 1 + ts (t - 1), ss h, ss w] in [-1, 1]."""
        ...

    def decode_stream(self, latents: Tensor | Iterable[Tensor]) -> Iterator[Tensor]:
        """Decode a latent video (or successive chunks of one) and yield frame chunks [B, 3, n, H, W]."""
        ...


def _channel_stats(like: Tensor, mean: Sequence[float], std: Sequence[float]) -> tuple[Tensor, Tensor]:
    shape = (1, len(mean), 1, 1, 1)
    m = torch.tensor(tuple(mean), device=like.device, dtype=like.dtype).view(shape)
    s = torch.tensor(tuple(std), device=like.device, dtype=like.dtype).view(shape)
    return m, s


def normalize_latents(z: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Raw latents [B, z, t, h, w] -> ``(z - mean) / std`` per channel (what the DiT sees)."""
    m, s = _channel_stats(z, mean, std)
    return (z - m) / s


def denormalize_latents(z: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Normalised latents [B, z, t, h, w] -> raw latents ``z * std + mean`` (what the decoder takes)."""
    m, s = _channel_stats(z, mean, std)
    return z * s + m


@dataclass(frozen=True)
class VideoSize:
    """Frame count and size of a video before :func:`pad_video`, for :func:`crop_video`."""

    frames: int
    height: int
    width: int


def pad_video(frames: Tensor, spatial_multiple: int = 8, temporal_stride: int = 4) -> tuple[Tensor, VideoSize]:
    """Pad [B, C, T, H, W] to T = 1 + k * temporal_stride and H, W multiples of ``spatial_multiple``.

    Time is padded by repeating the last frame, space by repeating the bottom row and right column, which
    keeps the padding close to the content (a black border would bleed into the latents). Use 16 as the
    multiple when the latents go to the DiT (its 2x2 patches need even latent sizes).
    """
    b, c, t, h, w = frames.shape
    size = VideoSize(t, h, w)
    extra_t = (-(t - 1)) % temporal_stride
    if extra_t:
        frames = torch.cat([frames, frames[:, :, -1:].expand(b, c, extra_t, h, w)], dim=2)
    pad_h, pad_w = (-h) % spatial_multiple, (-w) % spatial_multiple
    if pad_h or pad_w:
        frames = F.pad(frames, (0, pad_w, 0, pad_h, 0, 0), mode="replicate")
    return frames, size


def crop_video(frames: Tensor, size: VideoSize) -> Tensor:
    """Undo :func:`pad_video` on decoded frames [B, C, T', H', W'] (T' >= size.frames etc.)."""
    return frames[:, :, : size.frames, : size.height, : size.width]


@dataclass
class StreamCaches:
    """The causal caches of one stream: one per spatial tile (a single whole-frame tile when not tiling)."""

    tiling: Tiling | None = None
    tiles: list[Tile] = field(default_factory=list)
    caches: list[CausalCache] = field(default_factory=list)

    def prepare(self, latent_height: int, latent_width: int, spatial_stride: int) -> None:
        """Lay out the tiles on the first chunk; later chunks must have the same size."""
        if self.tiling is None:
            tiles = [Tile(0, latent_height, 0, latent_width)]
        else:
            tiles = tile_grid(latent_height, latent_width, self.tiling, spatial_stride)
        if not self.caches:
            self.tiles = tiles
            self.caches = [CausalCache() for _ in tiles]
        elif tiles != self.tiles:
            raise ValueError("frame size changed in the middle of a stream; start a new state")

    def to(self, device: torch.device | str) -> None:
        """Move every cache's history to ``device``."""
        for cache in self.caches:
            cache.to(device)


@dataclass
class DecodeState(StreamCaches):
    """Everything a decode stream carries between chunks."""

    latents_seen: int = 0
    frames_emitted: int = 0


@dataclass
class EncodeState(StreamCaches):
    """Everything an encode stream carries between chunks, including frames short of a complete group."""

    pending: Tensor | None = None  # [B, 3, n < 4, H, W] frames waiting for a complete group
    frames_seen: int = 0
    latents_emitted: int = 0

    @property
    def pending_frames(self) -> int:
        return 0 if self.pending is None else self.pending.shape[2]


def _time_chunks(video: Tensor | Iterable[Tensor], step: int) -> Iterator[Tensor]:
    """Non-empty time slices of at most ``step`` frames from a tensor [B, C, T, H, W] or each chunk of an iterable."""
    for chunk in [video] if isinstance(video, Tensor) else video:
        yield from (piece for piece in torch.split(chunk, step, dim=2) if piece.shape[2] > 0)


class WanVAE(nn.Module):
    """Wan2.1 causal video VAE; state-dict keys match the public ``Wan2.1_VAE.pth``.

    Outputs (latents and frames) are float32 whatever the weight dtype; inputs are cast to the weights.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder3d(
            c.base_dim, 2 * c.z_dim, c.dim_mult, c.num_res_blocks, c.temporal_downsample, c.dropout
        )
        self.conv1 = CausalConv3d(2 * c.z_dim, 2 * c.z_dim, 1)  # -> mean | log-variance
        self.decoder = Decoder3d(
            c.base_dim, c.z_dim, c.dim_mult, c.num_res_blocks, tuple(reversed(c.temporal_downsample)), c.dropout
        )
        self.conv2 = CausalConv3d(c.z_dim, c.z_dim, 1)
        bind_cache_keys(self)

    # -- protocol attributes ---------------------------------------------------------------------------------
    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def temporal_stride(self) -> int:
        return self.config.temporal_stride

    @property
    def spatial_stride(self) -> int:
        return self.config.spatial_stride

    def _param(self) -> Tensor:
        return next(self.parameters())

    # -- normalisation ---------------------------------------------------------------------------------------
    def normalize_latents(self, z: Tensor) -> Tensor:
        return normalize_latents(z, self.config.latent_mean, self.config.latent_std)

    def denormalize_latents(self, z: Tensor) -> Tensor:
        return denormalize_latents(z, self.config.latent_mean, self.config.latent_std)

    # -- decoding --------------------------------------------------------------------------------------------
    def new_decode_state(self, tiling: Tiling | None = None) -> DecodeState:
        return DecodeState(tiling=tiling)

    @torch.no_grad()
    def decode_chunk(self, latents: Tensor, state: DecodeState) -> Tensor:
        """Decode the next latent frames of a stream in one pass; ``state`` carries the causal history.

        latents [B, z, t, h, w] (normalised) -> frames [B, 3, n, 8h, 8w] in [-1, 1], n = 4t, or 4t - 3 for the
        stream's first chunk. Memory grows with t: stream long videos through :meth:`decode_stream`. With
        ``config.stream_start_hold`` the stream's first latent is decoded again that many times after frame 0
        and those frames are dropped: the history its temporal upsampling needs for latent 1.
        """
        self._check_latents(latents)
        if latents.shape[2] == 0:
            raise ValueError("decode_chunk got an empty latent chunk")
        p = self._param()
        z = self.denormalize_latents(latents.to(device=p.device, dtype=torch.float32)).to(p.dtype)
        _, _, _, h, w = z.shape
        state.prepare(h, w, self.spatial_stride)
        if state.latents_seen == 0 and self.config.stream_start_hold:
            pieces = [self._decode_frames(z[:, :, :1], state)]
            for _ in range(self.config.stream_start_hold):
                self._decode_frames(z[:, :, :1], state)
            if z.shape[2] > 1:
                pieces.append(self._decode_frames(z[:, :, 1:], state))
            frames = torch.cat(pieces, dim=2)
        else:
            frames = self._decode_frames(z, state)
        state.latents_seen += latents.shape[2]
        state.frames_emitted += frames.shape[2]
        return frames.clamp_(-1.0, 1.0)

    def _decode_frames(self, z: Tensor, state: DecodeState) -> Tensor:
        """Raw latents [B, z, t, h, w] -> frames [B, 3, n, H, W] (float32, not clamped), tile by tile."""

        def run(index: int, tile_latents: Tensor) -> Tensor:
            return self.decoder(self.conv2(tile_latents), state.caches[index])

        if state.tiling is None:
            return run(0, z).float()
        ramp = (state.tiling.overlap // self.spatial_stride) * self.spatial_stride
        return blend_tiles(z, state.tiles, run, 1, self.spatial_stride, ramp)

    def decode_stream(
        self,
        latents: Tensor | Iterable[Tensor],
        tiling: Tiling | None = None,
        latents_per_step: int = 1,
    ) -> Iterator[Tensor]:
        """Yield frame chunks [B, 3, n, H, W] as they are decoded.

        ``latents`` is either a whole latent video [B, z, t, h, w] (decoded ``latents_per_step`` latent frames
        at a time) or an iterable of successive latent chunks, e.g. a generator fed by a streaming sampler;
        chunks from an iterable are split into ``latents_per_step`` pieces too, so peak memory stays flat.
        """
        if latents_per_step < 1:
            raise ValueError("latents_per_step must be >= 1")
        state = self.new_decode_state(tiling)
        for piece in _time_chunks(latents, latents_per_step):
            yield self.decode_chunk(piece, state)

    def decode(self, latents: Tensor, tiling: Tiling | None = None) -> Tensor:
        """Normalised latents [B, z, t, h, w] -> frames [B, 3, 1 + 4 (t - 1), 8h, 8w] in [-1, 1] (float32)."""
        return torch.cat(list(self.decode_stream(latents, tiling=tiling)), dim=2)

    def decode_to(
        self,
        latents: Tensor | Iterable[Tensor],
        sink: Callable[[Tensor], object],
        tiling: Tiling | None = None,
    ) -> int:
        """Decode and hand each frame chunk [B, 3, n, H, W] to ``sink`` (e.g. a video writer) without keeping
        it; returns the number of frames written."""
        written = 0
        for frames in self.decode_stream(latents, tiling=tiling):
            sink(frames)
            written += frames.shape[2]
        return written

    # -- encoding --------------------------------------------------------------------------------------------
    def new_encode_state(self, tiling: Tiling | None = None) -> EncodeState:
        return EncodeState(tiling=tiling)

    @torch.no_grad()
    def encode_chunk(self, frames: Tensor, state: EncodeState) -> Tensor:
        """Encode the next frames of a stream in one pass; returns the latents they complete.

        frames [B, 3, n, H, W] -> latents [B, z, k, H/8, W/8] (normalised). A stream's latents come from the
        first frame, then from each further group of 4 frames; frames short of a group wait in ``state``.
        """
        self._check_frames_size(frames)
        p = self._param()
        x = frames.to(device=p.device, dtype=p.dtype, copy=True)  # our own: the cache may keep frames of it
        if state.pending is not None:
            x = torch.cat([state.pending, x], dim=2)
        state.frames_seen += frames.shape[2]
        stride, available = self.temporal_stride, x.shape[2]
        if state.latents_emitted == 0:  # the stream's first latent comes from its first frame alone
            usable = 0 if available == 0 else 1 + (available - 1) // stride * stride
        else:
            usable = available // stride * stride
        state.pending = x[:, :, usable:].clone() if usable < x.shape[2] else None
        b, _, _, h, w = x.shape
        s = self.spatial_stride
        if usable == 0:
            return torch.zeros(b, self.z_dim, 0, h // s, w // s, device=p.device)
        state.prepare(h // s, w // s, s)

        def run(index: int, tile_frames: Tensor) -> Tensor:
            # the first frame of a stream alone, then ENCODE_PIECE_FRAMES at a time (causal: the same latents), so
            # the full-size stages hold 1 new frame beside their 2-frame histories (ComfyUI's encoder takes 2)
            cache = state.caches[index]
            first = [tile_frames[:, :, :1]] if not cache.keys() else []
            rest = tile_frames[:, :, len(first) :]
            pieces = first + list(torch.split(rest, ENCODE_PIECE_FRAMES, dim=2)) if rest.shape[2] else first
            features = torch.cat([f for f in (self.encoder(piece, cache) for piece in pieces) if f.shape[2]], dim=2)
            stats = self.conv1(features)
            return stats[:, : self.z_dim]  # the mean; the log-variance half is unused at inference

        if state.tiling is None:
            mu = run(0, x[:, :, :usable]).float()
        else:
            ramp = state.tiling.overlap // s
            mu = blend_tiles(x[:, :, :usable], state.tiles, run, s, 1, ramp)
        state.latents_emitted += mu.shape[2]
        return self.normalize_latents(mu)

    def encode_stream(
        self, frames: Tensor | Iterable[Tensor], tiling: Tiling | None = None
    ) -> Iterator[Tensor]:
        """Yield latent chunks as frames arrive (a whole video [B, 3, T, H, W] or an iterable of chunks).

        Raises at the end if the frame count was not 1 + 4k (see :func:`pad_video`).
        """
        state = self.new_encode_state(tiling)
        step = self.temporal_stride
        if isinstance(frames, Tensor):  # the first frame alone, then groups of 4
            self._check_frame_count(frames.shape[2])
            frames = [frames[:, :, :1], *_time_chunks(frames[:, :, 1:], step)]
        for chunk in frames:
            latents = self.encode_chunk(chunk, state)
            if latents.shape[2] > 0:
                yield latents
        if state.pending_frames or state.frames_seen == 0:
            self._check_frame_count(state.frames_seen)

    def encode(self, frames: Tensor, tiling: Tiling | None = None, pad: bool = False) -> Tensor:
        """Frames [B, 3, T, H, W] in [-1, 1] -> normalised latents [B, z, 1 + (T - 1) // 4, H / 8, W / 8].

        With ``pad=True``, sizes that are not 1 + 4k frames / multiples of 8 are padded by :func:`pad_video`
        first; decoding then gives the padded size: ``crop_video(decoded, VideoSize(T, H, W))`` restores it.
        """
        self._check_layout(frames)
        if pad:
            frames, _ = pad_video(frames, self.spatial_stride, self.temporal_stride)
        return torch.cat(list(self.encode_stream(frames, tiling=tiling)), dim=2)

    # -- checks and helpers ----------------------------------------------------------------------------------
    def _check_latents(self, latents: Tensor) -> None:
        if latents.ndim != 5 or latents.shape[1] != self.z_dim:
            raise ValueError(f"expected latents [B, {self.z_dim}, t, h, w], got {tuple(latents.shape)}")

    @staticmethod
    def _check_layout(frames: Tensor) -> None:
        if frames.ndim != 5 or frames.shape[1] != 3:
            raise ValueError(f"expected frames [B, 3, T, H, W], got {tuple(frames.shape)}")

    def _check_frames_size(self, frames: Tensor) -> None:
        self._check_layout(frames)
        h, w = frames.shape[-2:]
        s = self.spatial_stride
        if h % s or w % s:
            raise ValueError(
                f"frame size {h}x{w} is not a multiple of {s}; pad with talkgen_core.models.vae.pad_video "
                f"(or encode(..., pad=True)) and crop the decoded frames back with crop_video"
            )

    def _check_frame_count(self, count: int) -> None:
        if count < 1 or (count - 1) % self.temporal_stride:
            k = max(0, -(-(count - 1) // self.temporal_stride))
            raise ValueError(
                f"the VAE encodes 1 + {self.temporal_stride}k frames, got {count}; pad to "
                f"{1 + self.temporal_stride * k} with talkgen_core.models.vae.pad_video (or encode(..., pad=True))"
                " and crop the decoded frames back with crop_video"
            )


def _resolve_config(name_or_config: str | VAEConfig) -> VAEConfig:
    return lookup_config(VAE_CONFIGS, name_or_config, "VAE")


def build_vae(
    name_or_config: str | VAEConfig, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> WanVAE:
    """Build a VAE with freshly initialised weights (seed torch for reproducibility). ``device="meta"``
    allocates nothing, for inspecting shapes or loading with ``assign=True``."""
    config = _resolve_config(name_or_config)
    with torch.device(device):
        model = WanVAE(config)
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


# Prefixes under which bundles store the VAE (full checkpoints, wrapper modules). Stripped when every VAE key
# carries one; the public Wan2.1_VAE.pth and ComfyUI's wan_2.1_vae.safetensors use bare keys.
KNOWN_KEY_PREFIXES = ("first_stage_model.", "vae.", "model.", "module.")


def strip_known_prefix(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    for prefix in KNOWN_KEY_PREFIXES:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            return strip_known_prefix({k[len(prefix) :]: v for k, v in state_dict.items()})
    for prefix in KNOWN_KEY_PREFIXES:  # a VAE inside a larger bundle: keep only its keys
        if any(k.startswith(prefix + "decoder.") for k in state_dict):
            return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return state_dict


def _config_for(state_dict: dict[str, Tensor]) -> VAEConfig:
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    for config in VAE_CONFIGS.values():
        expected = {k: tuple(v.shape) for k, v in build_vae(config, device="meta").state_dict().items()}
        if expected == shapes:
            return config
    raise ValueError(
        "weights match no known VAE config "
        f"({', '.join(sorted(VAE_CONFIGS))}); pass config= explicitly (encoder.conv1.weight "
        f"{shapes.get('encoder.conv1.weight')}, conv2.weight {shapes.get('conv2.weight')})"
    )


VAE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def vae_dtype(choice: str, device: str | torch.device) -> torch.dtype:
    """The VAE's weight dtype for a ``choice`` of "auto" or a ``VAE_DTYPES`` name.

    "auto" is bf16 on a CUDA device that supports it (as ComfyUI stores the Wan VAE: about half the memory
    and time) and fp32 elsewhere (CPUs: bf16 convolutions are slow there, and fp32 is the reference).
    """
    if choice == "auto":
        device = torch.device(device)
        gpu_bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 else torch.float32
    if choice not in VAE_DTYPES:
        raise ValueError(f"VAE dtype {choice!r} is not one of auto, {', '.join(VAE_DTYPES)}")
    return VAE_DTYPES[choice]


def load_vae(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    config: str | VAEConfig | None = None,
) -> WanVAE:
    """Load ``Wan2.1_VAE.pth`` (pickle, read with weights_only) or ``wan_2.1_vae.safetensors``.

    ``config=None`` picks the registered config whose shapes match the file. ``dtype=None`` keeps the
    file's floating dtype.
    """
    state_dict = strip_known_prefix(load_state_dict_file(path))
    cfg = _config_for(state_dict) if config is None else _resolve_config(config)
    if dtype is None:
        dtype = next((v.dtype for v in state_dict.values() if v.is_floating_point()), torch.float32)
    model = build_vae(cfg, device="meta")
    tensors = {k: v.to(device=device, dtype=dtype) for k, v in state_dict.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()

