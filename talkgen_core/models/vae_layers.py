"""Building blocks of the Wan2.1 causal video VAE: causal 3-D convolutions, their stream cache, and the
encoder/decoder stacks.

Time is causal everywhere: every temporal convolution looks only at the current and earlier frames. A layer
that needs earlier frames reads them from a :class:`CausalCache` that the caller passes in explicitly, so a
video can be pushed through in chunks of any size and the result equals one pass over the whole video.

Module attribute names (``residual.0.gamma``, ``time_conv``, ``middle.1.to_qkv`` ...) follow the public
``Wan2.1_VAE.pth`` state dict so that file loads without key remapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CausalCache:
    """The temporal history of every causal layer for one stream (one video being encoded or decoded).

    Entries are keyed by the owning layer's ``cache_key`` (its module path inside the VAE, e.g.
    ``"decoder.upsamples.3.time_conv"``), so the state is inspectable and independent of call order. A cached
    frame never keeps a whole chunk alive: slices are stored as copies, and only a tensor that is all of its
    own storage (a layer's fresh 2-frame input, which no layer writes into afterwards) is kept without one.
    """

    def __init__(self) -> None:
        self._history: dict[str, Tensor] = {}

    def get(self, key: str) -> Tensor | None:
        return self._history.get(key)

    def take(self, key: str) -> Tensor | None:
        """The history of ``key``, removed from the cache (the caller puts the new one back), so it is freed as
        soon as the caller drops it."""
        return self._history.pop(key, None)

    def put(self, key: str, frames: Tensor) -> None:
        if not key:
            raise ValueError("causal layer has no cache_key; build it inside a WanVAE (bind_cache_keys)")
        whole = frames._base is None and frames.storage_offset() == 0 and (
            frames.untyped_storage().nbytes() == frames.numel() * frames.element_size()
        )  # not a view of anything (e.g. of a caller's video), and no larger than its frames
        self._history[key] = frames.detach() if whole else frames.detach().clone()

    def __contains__(self, key: object) -> bool:
        return key in self._history

    def keys(self) -> list[str]:
        return sorted(self._history)

    def to(self, device: torch.device | str) -> None:
        """Move the stored history to ``device`` (e.g. off the accelerator between chunks)."""
        self._history = {key: frames.to(device) for key, frames in self._history.items()}

    def nbytes(self) -> int:
        """Memory held by the cache; constant once every layer has seen its history length of frames."""
        return sum(t.numel() * t.element_size() for t in self._history.values())


def bind_cache_keys(root: nn.Module) -> None:
    """Give every cache-using layer under ``root`` its module path as cache key."""
    for name, module in root.named_modules():
        if isinstance(module, (CausalConv3d, Resample)):
            module.cache_key = name


_ONEDNN_MIN_ELEMENTS = 32768
PIECE_FRAMES = 2  # frames per piece after a temporal upsample (decoder)
ENCODE_PIECE_FRAMES = 1  # frames per encoder call after a stream's first frame (see WanVAE.encode_chunk)


class CausalConv3d(nn.Conv3d):
    """3-D convolution padded on the left in time only (the past), zero-padded symmetrically in space.

    ``padding=(p_t, p_h, p_w)`` is read the way a symmetric Conv3d would: the layer keeps the ``2 * p_t``
    previous input frames as history, so output frame i depends on input frames i - 2 p_t .. i. At the start
    of a stream the missing history is zeros.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)
        p_t, p_h, p_w = (padding,) * 3 if isinstance(padding, int) else padding
        self.spatial_padding = (p_w, p_w, p_h, p_h)
        self.history_frames = 2 * p_t
        self.cache_key = ""

    def _convolve(self, x: Tensor) -> Tensor:
        """The convolution with the spatial zero padding done inside it (no padded copy of the input; time is
        already padded). PyTorch's CPU backend picks a slow reference kernel for batch-1 Conv3d (3-15x slower
        than oneDNN on frames of 32 px and up), so fp32 CPU inference on such inputs calls oneDNN directly;
        small inputs stay on the default path, where oneDNN's per-call overhead dominates."""
        padding = [0, self.spatial_padding[2], self.spatial_padding[0]]
        if (
            x.device.type == "cpu"
            and x.numel() >= _ONEDNN_MIN_ELEMENTS
            and x.dtype == torch.float32
            and torch.backends.mkldnn.is_available()
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        ):
            return torch.ops.aten.mkldnn_convolution(
                x.contiguous(), self.weight, self.bias, padding, list(self.stride), list(self.dilation), self.groups
            )
        return F.conv3d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:  # type: ignore[override]
        # x: [B, C_in, T, H, W] -> [B, C_out, T', H', W']
        if self.history_frames == 0:
            return self._convolve(x)
        if cache is None:
            raise ValueError(f"{self.cache_key or 'CausalConv3d'} needs a CausalCache")
        past = cache.take(self.cache_key)
        if past is None and x.shape[2] == 1 and self.stride[0] == 1:
            cache.put(self.cache_key, x)
            return self._convolve_first_frame(x)
        missing = self.history_frames - (0 if past is None else past.shape[2])
        parts = [x] if past is None else [past, x]
        if missing > 0:  # the start of a stream: zero history
            parts.insert(0, x.new_zeros(*x.shape[:2], missing, *x.shape[3:]))
        padded = torch.cat(parts, dim=2) if len(parts) > 1 else x  # one copy: history, then the new frames
        del past, parts  # the old history is freed before the new one is copied out and the convolution allocates
        newest = x if x.shape[2] >= self.history_frames else padded  # the new frames alone when they suffice
        if newest.shape[2] > self.history_frames:
            newest = newest[:, :, -self.history_frames :]
        cache.put(self.cache_key, newest)
        del newest
        return self._convolve(padded)

    def _convolve_first_frame(self, x: Tensor) -> Tensor:
        """A stream that starts with one frame: every past tap meets zero padding, so only the newest tap
        counts and the layer is a 2-D convolution (exact; a third of the work, and CPU conv2d is fast with
        or without gradients)."""
        padding = (self.spatial_padding[2], self.spatial_padding[0])
        out = F.conv2d(x[:, :, 0], self.weight[:, :, -1], self.bias, self.stride[1:], padding, self.dilation[1:],
                       self.groups)  # fmt: skip
        return out.unsqueeze(2)


class RMSNorm(nn.Module):
    """Normalise each pixel's channel vector to unit RMS, then scale per channel by ``gamma``.

    ``spatial_dims`` is 3 for video tensors [B, C, T, H, W] and 2 for frames [N, C, H, W]; it only sets the
    stored shape of ``gamma`` (the public weights use [C, 1, 1, 1] and [C, 1, 1] respectively).
    """

    def __init__(self, channels: int, spatial_dims: int = 3) -> None:
        super().__init__()
        self.scale = channels**0.5
        self.gamma = nn.Parameter(torch.ones(channels, *(1,) * spatial_dims))

    def forward(self, x: Tensor) -> Tensor:
        # Same as F.normalize(x, dim=1) (eps 1e-12 on the norm) but far faster on CPU, where a norm over a
        # strided dim is slow; the sum of squares accumulates in fp32 for half-precision inputs.
        sum_sq = torch.sum(x * x, dim=1, keepdim=True, dtype=torch.float32)
        inv_norm = sum_sq.clamp_min(1e-24).rsqrt().to(x.dtype)
        gain = self.scale * self.gamma
        return (x * inv_norm).mul_(gain) if _inference() else x * inv_norm * gain


def _inference() -> bool:
    """No autograd graph is being recorded, so a layer may overwrite the temporaries it made (less memory)."""
    return not torch.is_grad_enabled()


class SiLU(nn.Module):
    """SiLU, in place at inference: its input is always the fresh output of an RMSNorm."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x, inplace=_inference())


class ResidualBlock(nn.Module):
    """norm -> SiLU -> causal conv -> norm -> SiLU -> (dropout) -> causal conv, plus a 1x1x1 shortcut."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim),
            SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim),
            SiLU(),
            nn.Dropout(dropout),
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut: nn.Module = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor, cache: CausalCache) -> Tensor:
        # x: [B, in_dim, T, H, W] -> [B, out_dim, T, H, W]
        h = x
        for layer in self.residual:
            h = layer(h, cache) if isinstance(layer, CausalConv3d) else layer(h)
        skip = self.shortcut(x)  # after the residual path, so it is not held through it
        return h.add_(skip) if _inference() else h + skip


class FrameAttention(nn.Module):
    """Single-head self-attention over the pixels of each frame separately (no mixing across time)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, spatial_dims=2)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)  # starts as identity (plus bias), as in the original

    def forward(self, x: Tensor) -> Tensor:
        # x: [B, C, T, H, W] -> same
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        qkv = self.to_qkv(self.norm(frames)).reshape(b * t, 3 * c, h * w).transpose(1, 2)  # [BT, HW, 3C]
        q, k, v = qkv.unsqueeze(1).chunk(3, dim=-1)  # each [BT, 1, HW, C]
        attended = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2).reshape(b * t, c, h, w)
        out = self.proj(attended).reshape(b, t, c, h, w).transpose(1, 2)
        return x + out


class _NearestUpsample2x(nn.Module):
    """2x nearest-exact spatial upsampling, computed in fp32 (half-precision nearest kernels vary by backend)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").to(x.dtype)


class Resample(nn.Module):
    """Spatial 2x up/down-sampling of every frame, optionally with 2x temporal up/down-sampling.

    Temporal rules (these fix the 1 + 4k frames <-> 1 + k latents mapping):

    * ``upsample3d``: the first frame of a stream passes through as one frame; every later frame becomes two
      frames, produced by a causal (3, 1, 1) convolution with twice the channels, interleaved in time. The
      first frame is not part of that convolution's history.
    * ``downsample3d``: the first frame of a stream passes through; after it, output k is a (3, 1, 1) stride-2
      convolution over input frames 2k, 2k + 1, 2k + 2. Frames waiting for a complete window stay in the cache.
    """

    MODES = ("upsample2d", "upsample3d", "downsample2d", "downsample3d")

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown resample mode {mode!r}; expected one of {self.MODES}")
        self.mode = mode
        self.cache_key = ""
        self.resample: nn.Sequential
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(_NearestUpsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        self.time_conv: CausalConv3d | None = None
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: Tensor, cache: CausalCache) -> Tensor:
        # x: [B, C, T, H, W] -> [B, C', T', H * 2^±1, W * 2^±1]
        if self.mode == "upsample3d":
            x = self._double_time(x, cache)
        b, c, t, h, w = x.shape
        frames = self.resample(x.transpose(1, 2).reshape(b * t, c, h, w))
        x = frames.reshape(b, t, *frames.shape[1:]).transpose(1, 2)
        if self.mode == "downsample3d":
            x = self._halve_time(x, cache)
        return x

    def _double_time(self, x: Tensor, cache: CausalCache) -> Tensor:
        assert self.time_conv is not None
        conv_key = self.time_conv.cache_key
        head: list[Tensor] = []
        if conv_key not in cache:  # stream start: frame 0 passes through; an empty history marks "started"
            head, x = [x[:, :, :1]], x[:, :, 1:]
            cache.put(conv_key, x[:, :, :0])
        if x.shape[2] == 0:
            return torch.cat(head, dim=2)
        b, c, t, h, w = x.shape
        pairs = self.time_conv(x, cache).reshape(b, 2, c, t, h, w)
        doubled = pairs.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)  # [a0, b0, a1, b1, ...]
        return torch.cat([*head, doubled], dim=2)

    def _halve_time(self, x: Tensor, cache: CausalCache) -> Tensor:
        assert self.time_conv is not None
        waiting = cache.get(self.cache_key)
        outputs: list[Tensor] = []
        if waiting is None:  # stream start: frame 0 passes through and opens the first window
            outputs.append(x[:, :, :1])
            sequence = x
        else:
            sequence = torch.cat([waiting, x], dim=2)
        windows = (sequence.shape[2] - 1) // 2
        if windows > 0:
            outputs.append(self.time_conv(sequence[:, :, : 2 * windows + 1]))
        cache.put(self.cache_key, sequence[:, :, 2 * windows :])
        if not outputs:
            return sequence[:, :, :0]
        return torch.cat(outputs, dim=2)


def _middle(dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(dim, dim, dropout), FrameAttention(dim), ResidualBlock(dim, dim, dropout))


def _run(layers: nn.Module | Sequence[nn.Module], x: Tensor, cache: CausalCache) -> Tensor:
    """Apply VAE layers in order, passing the cache to those that keep history. Each input is dropped as soon
    as the next layer has run (nothing else here holds it)."""
    for layer in layers.children() if isinstance(layers, nn.Module) else layers:
        if isinstance(layer, (ResidualBlock, Resample, CausalConv3d)):
            x = layer(x, cache)
        else:
            x = layer(x)
        if x.shape[2] == 0:  # a temporal downsample is still waiting for a full window
            break
    return x


class Encoder3d(nn.Module):
    """Pixels [B, 3, T, H, W] -> features [B, out_channels, T', H / 2^L, W / 2^L] (L = len(dim_mult) - 1)."""

    def __init__(
        self,
        base_dim: int,
        out_channels: int,
        dim_mult: Sequence[int],
        num_res_blocks: int,
        temporal_downsample: Sequence[bool],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dims = [base_dim * m for m in (1, *dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for level, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim, dropout))
                in_dim = out_dim
            if level < len(dim_mult) - 1:
                blocks.append(Resample(out_dim, "downsample3d" if temporal_downsample[level] else "downsample2d"))
        self.downsamples = nn.Sequential(*blocks)
        self.middle = _middle(dims[-1], dropout)
        self.head = nn.Sequential(RMSNorm(dims[-1]), SiLU(), CausalConv3d(dims[-1], out_channels, 3, padding=1))
        self.out_channels = out_channels

    def forward(self, x: Tensor, cache: CausalCache) -> Tensor:
        layers = [self.conv1, *self.downsamples.children(), *self.middle.children(), *self.head.children()]
        x = _run(layers, x, cache)  # one run over all stages: no stage's input stays held through the next
        if x.shape[2] == 0:
            b, _, _, h, w = x.shape
            return x.new_zeros(b, self.out_channels, 0, h, w)
        return x


class Decoder3d(nn.Module):
    """Latents [B, z_dim, t, h, w] -> pixels [B, 3, T, h * 2^L, w * 2^L], T = 1 + 2^U (t - 1) for a whole stream."""

    def __init__(
        self,
        base_dim: int,
        z_dim: int,
        dim_mult: Sequence[int],
        num_res_blocks: int,
        temporal_upsample: Sequence[bool],
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dims = [base_dim * m for m in (dim_mult[-1], *reversed(dim_mult))]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = _middle(dims[0], dropout)
        blocks: list[nn.Module] = []
        in_dim = dims[0]
        for level, out_dim in enumerate(dims[1:]):
            for _ in range(num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, out_dim, dropout))
                in_dim = out_dim
            if level < len(dim_mult) - 1:
                blocks.append(Resample(out_dim, "upsample3d" if temporal_upsample[level] else "upsample2d"))
                in_dim = out_dim // 2  # the upsampling conv halves the channels
        self.upsamples = nn.Sequential(*blocks)
        self.head = nn.Sequential(RMSNorm(dims[-1]), SiLU(), CausalConv3d(dims[-1], 3, 3, padding=1))

    def forward(self, z: Tensor, cache: CausalCache) -> Tensor:
        x = _run(self.middle, self.conv1(z, cache), cache)
        return torch.cat(list(self._upsampled(x, 0, cache)), dim=2)

    def _upsampled(self, x: Tensor, start: int, cache: CausalCache) -> Iterator[Tensor]:
        """``x`` through ``upsamples[start:]`` and the head. After a temporal upsample the frames go on in
        pieces of at most ``PIECE_FRAMES`` (causal layers: exactly the same output), so the larger stages
        never hold more than that many frames: the working memory of a step is that of 2 frames at full size."""
        layers = list(self.upsamples.children())
        for index in range(start, len(layers)):
            layer = layers[index]
            x = layer(x, cache)
            if isinstance(layer, Resample) and layer.mode == "upsample3d" and x.shape[2] > PIECE_FRAMES:
                for piece in torch.split(x, PIECE_FRAMES, dim=2):
                    yield from self._upsampled(piece, index + 1, cache)
                return
        yield _run(self.head, x, cache)
