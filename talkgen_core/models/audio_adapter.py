"""The InfiniteTalk / MultiTalk audio adapter: audio projection, per-latent-frame audio cross-attention and
multi-speaker routing.

Audio path, per speaker:

    per-video-frame windows [F, W, L, D]  (F = 4 (T - 1) + 1 video frames, W = 5 offsets -2..+2,
                                           L wav2vec2 layers, D wav2vec2 width)
      -> latent frame 0: the whole window of video frame 0            (W vectors)
         latent frame k >= 1 (video frames 4k-3 .. 4k): first frame's offsets -2..0, centres of the middle
         frames, last frame's offsets 0..+2                            (W + 3 vectors)
      -> AudioProjModel MLP -> [T, M, C] tokens (M = 32, C = 768 for the real model)

Speakers are concatenated along the token axis, so every latent frame has P * M audio tokens. The audio
cross-attention is frame-local: the h * w visual tokens of latent frame k attend only to frame k's tokens.

Speaker routing (``SpeakerRouting``):

* ``single``: one speaker, plain attention without positions; no affinity map is computed.
* ``lrope``: exactly two speakers, as the official model: an affinity map of every visual token to the
  first latent frame's speaker-1 / speaker-2 / background regions (from the self-attention's roped q, k,
  averaged over heads) assigns each token a fractional label position, speaker 1 in [0, 4], speaker 2 in
  [20, 24], background 12; the audio keys sit at 2 and 22; 1-D interleaved RoPE on q and k.
* ``mask``: any number of speakers (the default beyond two): a token inside speaker p's mask attends only
  to speaker p's audio tokens (inside several masks: to each of them); a token outside every mask
  (background) attends to **all** speakers' tokens, as every token did in training, so the residual it
  receives stays in distribution.

Per-speaker strength (``audio_scale`` [P]) scales the audio residual of the tokens a speaker owns; tokens
owned by no single speaker (background, overlaps) get the mean strength of the speakers they attend to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from talkgen_core.models.attention import attention
from talkgen_core.models.configs import DiTConfig
from talkgen_core.models.layers import CoreOperations
from talkgen_core.models.rope import apply_rope, rope_1d_angles, rope_rotation

RoutingMode = Literal["single", "lrope", "mask"]


def group_audio_windows(
    audio: torch.Tensor, vae_scale: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regroup per-video-frame windows into per-latent-frame vectors.

    ``audio`` [N, F, W, L, D] with F = vae_scale * (T - 1) + 1 ->
    (first [N, 1, W, L, D], later [N, T - 1, W + vae_scale - 1, L, D]).
    """
    n, frames, window, layers, width = audio.shape
    if (frames - 1) % vae_scale:
        raise ValueError(
            f"audio has {frames} video frames per window set; expected {vae_scale} * (latent frames - 1) + 1"
        )
    mid = window // 2
    first = audio[:, :1]
    groups = audio[:, 1:].reshape(n, (frames - 1) // vae_scale, vae_scale, window, layers, width)
    later = torch.cat(
        [
            groups[:, :, 0, : mid + 1],  # first video frame of the group: offsets -2..0
            groups[:, :, 1:-1, mid],  # middle frames: centre vector only
            groups[:, :, -1, mid:],  # last frame: offsets 0..+2
        ],
        dim=2,
    )
    return first, later


class AudioProjModel(nn.Module):
    """wav2vec2 window features -> ``audio_context_tokens`` tokens per latent frame (keys ``audio_proj.*``)."""

    def __init__(self, config: DiTConfig, operations: type = CoreOperations) -> None:
        super().__init__()
        ops = operations
        self.vae_scale = config.vae_scale
        self.context_tokens = config.audio_context_tokens
        self.token_dim = config.audio_token_dim
        features = config.audio_layers * config.audio_dim
        self.proj1 = ops.Linear(config.audio_window * features, config.audio_intermediate_dim)
        self.proj1_vf = ops.Linear(config.audio_window_vf * features, config.audio_intermediate_dim)
        self.proj2 = ops.Linear(config.audio_intermediate_dim, config.audio_intermediate_dim)
        self.proj3 = ops.Linear(config.audio_intermediate_dim, config.audio_context_tokens * config.audio_token_dim)
        self.norm = ops.LayerNorm(config.audio_token_dim)  # torch default eps 1e-5, affine

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio`` [N, F, W, L, D] (compute dtype) -> float32 tokens [N, T, M, C]."""
        n = audio.shape[0]
        first, later = group_audio_windows(audio, self.vae_scale)
        hidden = [F.relu(self.proj1(first.reshape(n, 1, -1)))]  # [N, 1, I]
        if later.shape[1]:
            hidden.append(F.relu(self.proj1_vf(later.reshape(n, later.shape[1], -1))))  # [N, T-1, I]
        h = F.relu(self.proj2(torch.cat(hidden, dim=1)))  # [N, T, I]
        tokens = self.proj3(h).reshape(n, h.shape[1], self.context_tokens, self.token_dim)
        return self.norm(tokens)


@dataclass
class SpeakerRouting:
    """How visual tokens pick audio tokens; prepared once per forward, shared by all blocks.

    ``region_weights`` [S, 3] or, with per-sample masks, [B, S, 3] (lrope: speaker 1, speaker 2, background
    masks divided by their areas, over one latent frame's S tokens); ``key_mask`` [S, P * M] bool (mask mode: True = may attend);
    ``speaker_scale`` [P] float32, None when every speaker has the same strength ``uniform_scale``;
    ``token_scale`` [S] (mask mode with unequal strengths: the strength each token of a frame receives).
    """

    mode: RoutingMode
    num_speakers: int
    tokens_per_speaker: int
    uniform_scale: float = 1.0
    speaker_scale: torch.Tensor | None = None
    region_weights: torch.Tensor | None = None
    key_mask: torch.Tensor | None = None
    token_scale: torch.Tensor | None = None
    class_range: int = 24
    class_interval: int = 4

    @property
    def needs_affinity(self) -> bool:
        return self.mode == "lrope"


def masks_to_token_grid(speaker_masks: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """[P, h, w] (or per sample [B, P, h, w]) masks of any resolution -> bool [P, N_h * N_w] ([B, P, ...])
    (nearest resize, threshold > 0)."""
    if speaker_masks.dim() not in (3, 4):
        raise ValueError(f"speaker_masks must be [P, h, w] or [B, P, h, w], got shape {tuple(speaker_masks.shape)}")
    batched = speaker_masks if speaker_masks.dim() == 4 else speaker_masks[None]
    resized = F.interpolate(batched.float(), size=grid_hw, mode="nearest")
    regions = (resized > 0).flatten(2)
    return regions if speaker_masks.dim() == 4 else regions[0]


def prepare_speaker_routing(
    config: DiTConfig,
    num_speakers: int,
    grid_hw: tuple[int, int],
    speaker_masks: torch.Tensor | None,
    audio_scale: float | torch.Tensor | list[float],
    routing: str,
    device: torch.device,
) -> SpeakerRouting:
    """Validate the speaker inputs and build the routing shared by every block."""
    scale = torch.as_tensor(audio_scale, dtype=torch.float32).flatten()
    if scale.numel() == 1:
        scale = scale.expand(num_speakers)
    if scale.numel() != num_speakers:
        raise ValueError(f"audio_scale has {scale.numel()} values for {num_speakers} speakers; give one float or [P]")
    uniform = bool(torch.all(scale == scale[0]))
    common = dict(
        num_speakers=num_speakers,
        tokens_per_speaker=config.audio_context_tokens,
        uniform_scale=float(scale[0]),
        speaker_scale=None if uniform else scale.to(device),
        class_range=config.speaker_class_range,
        class_interval=config.speaker_class_interval,
    )
    if routing not in ("auto", "lrope", "mask"):
        raise ValueError(f"speaker_routing must be 'auto', 'lrope' or 'mask', got {routing!r}")
    if num_speakers == 1:
        return SpeakerRouting(mode="single", **common)  # masks are irrelevant with one speaker
    if speaker_masks is None:
        raise ValueError(
            f"audio has {num_speakers} speakers but speaker_masks is None; pass [P, h, w] masks, one per speaker"
        )
    if speaker_masks.shape[-3] != num_speakers:
        raise ValueError(f"speaker_masks has {speaker_masks.shape[-3]} masks for {num_speakers} speakers")
    regions = masks_to_token_grid(speaker_masks.to(device), grid_hw)  # [P, S] (or [B, P, S]) bool
    mode = ("lrope" if num_speakers == 2 else "mask") if routing == "auto" else routing
    if mode == "lrope":
        if num_speakers != 2:
            raise ValueError(f"label RoPE routing was trained for exactly 2 speakers, got {num_speakers}; use 'mask'")
        first, second = regions.unbind(-2)
        classes = torch.stack([first, second, ~(first | second)], dim=-1).float()  # [(B,) S, 3]
        weights = classes / classes.sum(dim=-2, keepdim=True).clamp(min=1.0)
        return SpeakerRouting(mode="lrope", region_weights=weights.contiguous(), **common)
    if regions.dim() == 3:
        raise ValueError("per-sample speaker_masks [B, P, h, w] are for label RoPE routing (two speakers); "
                         "mask routing takes one [P, h, w] set for the batch")
    inside = regions.sum(dim=0)  # [S] how many masks hold the token
    allowed = torch.where(inside[None] > 0, regions, torch.ones_like(regions))  # background -> all speakers
    key_mask = allowed.t().repeat_interleave(config.audio_context_tokens, dim=1)  # [S, P*M]
    token_scale = None
    if not uniform:
        # a token takes the mean strength of the speakers it attends to (its own one inside a single mask)
        allowed_f = allowed.t().float()  # [S, P]
        token_scale = (allowed_f * scale.to(device)).sum(1) / allowed_f.sum(1)
    return SpeakerRouting(mode="mask", key_mask=key_mask, token_scale=token_scale, **common)


def speaker_affinity(
    q: torch.Tensor, k: torch.Tensor, frame_tokens: int, region_weights: torch.Tensor
) -> torch.Tensor:
    """Attention mass of each visual token on each region of the first latent frame, averaged over heads.

    ``q``, ``k`` [B, L, H, D] (after RoPE); ``region_weights`` [S, C] or [B, S, C] -> float32 [B, L, C].
    Computed in float32 from the compute-dtype q, k (exact products; the map feeds min-max rescaled label
    positions, which amplify rounding). Query chunks bound the [B, H, chunk, S] probability block: on the CPU
    to about 2^18 values, which stay in cache (2x faster than one large block at 8190 tokens); elsewhere, and
    under ``torch.compile`` (which would unroll the loop), to 2^26.
    """
    b, length, heads, dim = q.shape
    keys = k[:, :frame_tokens].transpose(1, 2).float()  # [B, H, S, D]
    weights = region_weights.float() if region_weights.dim() == 2 else region_weights.float()[:, None]
    in_cache = q.device.type == "cpu" and not torch.compiler.is_compiling()
    chunk = max(1, (1 << 18 if in_cache else 1 << 26) // max(1, b * heads * frame_tokens))
    out = []
    for start in range(0, length, chunk):
        qc = q[:, start : start + chunk].transpose(1, 2).float() * dim**-0.5  # [B, H, c, D]
        probs = torch.softmax(qc @ keys.transpose(-1, -2), dim=-1)  # [B, H, c, S]
        out.append((probs @ weights).mean(dim=1))  # [B, c, C]
    return torch.cat(out, dim=1)


def label_positions(affinity: torch.Tensor, routing: SpeakerRouting) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token label positions and winning class from the affinity map.

    ``affinity`` [B, L, 3] -> (positions float32 [B, L], class index [B, L]); rows 0/1 are min-max
    rescaled over all tokens into [0, interval] / [range - interval, range], background is range / 2.
    """
    lo = affinity.amin(dim=1, keepdim=True)  # [B, 1, 3]
    span = affinity.amax(dim=1, keepdim=True) - lo
    # a (near-)constant row, e.g. a mask covering the whole frame, carries no position information; rescaling
    # its rounding noise would make positions depend on matmul blocking (batch size), so it sits mid-range
    flat = span < 1e-6
    unit = torch.where(flat, torch.full_like(affinity, 0.5), (affinity - lo) / torch.where(flat, 1.0, span))
    interval, full = routing.class_interval, routing.class_range
    speaker1 = unit[..., 0] * interval
    speaker2 = unit[..., 1] * interval + (full - interval)
    background = torch.full_like(speaker1, float(full // 2))
    winner = affinity.argmax(dim=-1)  # [B, L]
    positions = torch.stack([speaker1, speaker2, background], dim=-1).gather(-1, winner[..., None])[..., 0]
    return positions, winner


class AudioCrossAttention(nn.Module):
    """Frame-local attention of visual tokens on audio tokens (keys ``q_linear``, ``kv_linear``, ``proj``)."""

    def __init__(self, config: DiTConfig, operations: type = CoreOperations) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.q_linear = operations.Linear(config.dim, config.dim)
        self.kv_linear = operations.Linear(config.audio_token_dim, 2 * config.dim)  # output: K first, then V
        self.proj = operations.Linear(config.dim, config.dim)

    def forward(
        self,
        x: torch.Tensor,  # [B, L, C] normed visual tokens, L = N_t * S
        audio_tokens: torch.Tensor,  # [B, N_t, P * M, C_a]
        grid: tuple[int, int, int],
        routing: SpeakerRouting,
        affinity: torch.Tensor | None = None,  # [B, L, 3] (lrope only)
        backend: str = "sdpa",
    ) -> torch.Tensor:  # [B, L, C] residual (already scaled by the speaker strengths)
        b, length, channels = x.shape
        frames, frame_tokens = grid[0], grid[1] * grid[2]
        keys = audio_tokens.shape[2]
        q = self.q_linear(x).view(b, length, self.num_heads, self.head_dim)
        kv = self.kv_linear(audio_tokens.to(x.dtype)).view(b, frames, keys, 2, self.num_heads, self.head_dim)
        k, v = kv[:, :, :, 0], kv[:, :, :, 1]  # [B, N_t, K, H, D]
        winner = None
        if routing.mode == "lrope":
            if affinity is None:
                raise ValueError("label RoPE routing needs the self-attention affinity map")
            positions, winner = label_positions(affinity, routing)
            q = apply_rope(q, rope_rotation(rope_1d_angles(positions, self.head_dim)))
            centre1 = routing.class_interval / 2
            centre2 = routing.class_range - routing.class_interval / 2
            key_pos = torch.full((keys,), centre2, device=x.device)
            key_pos[: keys // 2] = centre1
            k_flat = k.reshape(b * frames, keys, self.num_heads, self.head_dim)
            k = apply_rope(k_flat, rope_rotation(rope_1d_angles(key_pos, self.head_dim)))
        q = q.reshape(b * frames, frame_tokens, self.num_heads, self.head_dim)
        k = k.reshape(b * frames, keys, self.num_heads, self.head_dim)
        v = v.reshape(b * frames, keys, self.num_heads, self.head_dim)
        mask = routing.key_mask if routing.mode == "mask" else None
        out = attention(q, k, v, backend=backend, attn_mask=mask)  # [B*N_t, S, H, D]
        out = self.proj(out.reshape(b, length, channels))
        scale = self._token_scale(routing, winner, frames)
        if isinstance(scale, float):
            return out if scale == 1.0 else out * scale
        return out * scale.to(out.dtype)

    @staticmethod
    def _token_scale(routing: SpeakerRouting, winner: torch.Tensor | None, frames: int) -> float | torch.Tensor:
        """Residual scale per token: a float for uniform strength, else [B or 1, L, 1]."""
        if routing.speaker_scale is None:
            return routing.uniform_scale
        if routing.mode == "lrope":
            assert winner is not None
            scale = routing.speaker_scale
            per_class = torch.cat([scale, scale.mean().reshape(1)])  # speaker 1, speaker 2, background
            return per_class[winner][..., None]  # [B, L, 1]
        assert routing.mode == "mask" and routing.token_scale is not None
        return routing.token_scale.repeat(frames)[None, :, None]  # [1, L, 1]
