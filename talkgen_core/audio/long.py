"""Encoding audio of any length in bounded memory.

Two stages, each with its own bound:

1. Conv features, exact. The conv stack is run on waveform slices aligned to its total stride (320
   samples), so every slice yields exactly the frames a single pass would. The only clip-wide
   operation, the first layer's GroupNorm (one group per channel, statistics over all time), gets its
   per-channel mean and variance from a first streaming pass (``first_layer_stats``). The 50 Hz
   features are then interpolated to video frames with the same align_corners=True mapping a
   one-pass ``F.interpolate`` over the whole clip uses, evaluated only where a window needs it.

2. Transformer, windowed. Self-attention is global, so a window that does not see the whole clip
   differs from the one-pass result. Windows of ``window_frames`` video frames overlap by
   ``overlap_frames``; inside an overlap the two windows' outputs are cross-faded linearly (weights
   sum to one), elsewhere each frame comes from exactly one window. Clips no longer than one window
   are encoded in one pass, identical to ``Wav2Vec2Model.forward``.

Peak working memory depends on the window and conv slice lengths, not on the duration. ``iter_encoded``
yields the result as it is completed and reads the waveform only by slices, so with both on disk
(``spill.py``) nothing held grows with the duration; ``encode_windowed`` gathers it into one tensor.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .wav2vec2 import GroupNormStats, Wav2Vec2Model

CONV_SLICE_FRAMES = 500  # 50 Hz conv frames per slice: 10 s of audio


@dataclass(frozen=True)
class EncodeWindow:
    start: int  # first video frame (inclusive)
    end: int  # last video frame (exclusive)


def plan_windows(num_frames: int, window_frames: int, overlap_frames: int) -> list[EncodeWindow]:
    """Equal-length windows covering [0, num_frames), evenly spaced, overlapping by >= ``overlap_frames``."""
    if window_frames < 1:
        raise ValueError(f"window_frames must be >= 1, got {window_frames}")
    if num_frames <= window_frames:
        return [EncodeWindow(0, num_frames)]
    overlap = min(max(overlap_frames, 0), window_frames // 2)
    count = math.ceil((num_frames - overlap) / (window_frames - overlap))
    span = num_frames - window_frames
    starts = [round(i * span / (count - 1)) for i in range(count)]
    return [EncodeWindow(s, s + window_frames) for s in starts]


def crossfade_weights(windows: list[EncodeWindow], index: int) -> torch.Tensor:
    """Per-frame weights [end - start] of window ``index``: linear ramps across its overlaps.

    In an overlap of n frames between two windows the outgoing one falls n/(n+1) .. 1/(n+1) while
    the incoming one rises 1/(n+1) .. n/(n+1), so the two sum to one. (The caller still divides by
    the summed weights, which also covers frames where three short-hop windows meet.)
    """
    win = windows[index]
    pos = torch.arange(win.start, win.end, dtype=torch.float64)
    weight = torch.ones_like(pos)
    if index > 0:
        n = windows[index - 1].end - win.start
        weight = weight * ((pos - win.start + 1) / (n + 1)).clamp(max=1.0)
    if index + 1 < len(windows):
        n = win.end - windows[index + 1].start
        weight = weight * ((win.end - pos) / (n + 1)).clamp(max=1.0)
    return weight.float()


def first_layer_stats(model: Wav2Vec2Model, waveform: torch.Tensor,
                      slice_frames: int = CONV_SLICE_FRAMES) -> GroupNormStats:
    """Mean and biased variance per channel of the first conv layer over the whole clip [S].

    Accumulated in float64 over slices, so memory is bounded by one slice.
    """
    conv = model.feature_extractor.conv_layers[0].conv
    kernel, stride = conv.kernel_size[0], conv.stride[0]
    total = (waveform.shape[-1] - kernel) // stride + 1
    step = slice_frames * model.config.frame_stride // stride  # first-layer frames per slice
    acc = torch.zeros(conv.out_channels, dtype=torch.float64, device=waveform.device)
    acc_sq = torch.zeros_like(acc)
    for m0 in range(0, total, step):
        m1 = min(m0 + step, total)
        h = conv(waveform[m0 * stride:(m1 - 1) * stride + kernel][None, None])[0].double()  # [C0, m1 - m0]
        acc += h.sum(-1)
        acc_sq += (h * h).sum(-1)
    mean = acc / total
    var = (acc_sq / total - mean * mean).clamp(min=0.0)
    return GroupNormStats(mean=mean.float(), var=var.float())


def conv_features_range(model: Wav2Vec2Model, waveform: torch.Tensor, first: int, last: int,
                        stats: GroupNormStats, slice_frames: int = CONV_SLICE_FRAMES) -> torch.Tensor:
    """Conv feature frames [first, last) of the clip [S], exactly as one pass would give: [C, last - first]."""
    stride, field = model.config.frame_stride, model.config.receptive_field
    parts = []
    for n0 in range(first, last, slice_frames):
        n1 = min(n0 + slice_frames, last)
        segment = waveform[n0 * stride:(n1 - 1) * stride + field]
        parts.append(model.extract_features(segment[None], stats)[0])
    return torch.cat(parts, dim=-1)


def interpolation_weights(num_conv: int, num_frames: int, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left source index and blend weight of video frames [start, end) under align_corners=True.

    Computed in float32 exactly as PyTorch's linear ``F.interpolate`` does (scale = (N-1)/(T-1) as a
    float, position = scale * frame), so windowed features match a one-pass interpolation bit for bit
    rather than merely to float64 accuracy.
    """
    frames = torch.arange(start, end, dtype=torch.float32)
    if num_frames <= 1:
        return torch.zeros(end - start, dtype=torch.long), torch.zeros(end - start)
    scale = torch.tensor(float(num_conv - 1), dtype=torch.float32) / (num_frames - 1)
    pos = frames * scale
    left = pos.long()
    return left.clamp(max=num_conv - 1), (pos - left.float()).clamp(0.0, 1.0)


def frame_aligned_features(model: Wav2Vec2Model, waveform: torch.Tensor, num_conv: int, num_frames: int,
                           window: EncodeWindow, stats: GroupNormStats) -> torch.Tensor:
    """Conv features linearly interpolated to video frames [window.start, window.end): [n, C]."""
    lo, frac = interpolation_weights(num_conv, num_frames, window.start, window.end)
    hi = (lo + 1).clamp(max=num_conv - 1)
    first, last = int(lo[0]), int(hi[-1]) + 1
    conv = conv_features_range(model, waveform, first, last, stats).transpose(0, 1)  # [last - first, C]
    lo, hi = (lo - first).to(conv.device), (hi - first).to(conv.device)
    frac = frac.to(conv)[:, None]
    return conv[lo] * (1 - frac) + conv[hi] * frac


def encode_windowed(model: Wav2Vec2Model, waveform: torch.Tensor, num_frames: int,
                    window_frames: int, overlap_frames: int) -> torch.Tensor:
    """Prepared waveform [S] (at least one receptive field long) -> hidden states [num_frames, L, D]."""
    cfg = model.config
    out = torch.empty(num_frames, cfg.num_layers, cfg.hidden_size, dtype=waveform.dtype, device=waveform.device)
    done = 0
    for rows in iter_encoded(model, waveform, num_frames, window_frames, overlap_frames):
        out[done:done + rows.shape[0]] = rows
        done += rows.shape[0]
    return out


def iter_encoded(model: Wav2Vec2Model, waveform: torch.Tensor, num_frames: int,
                 window_frames: int, overlap_frames: int) -> Iterator[torch.Tensor]:
    """As :func:`encode_windowed`, the hidden states in order as blocks [n, L, D], each yielded once no later
    window reaches it, so only the current window's rows are held (``waveform``: a tensor, or anything sliced
    like one, e.g. a :class:`~talkgen_core.audio.spill.SpillRows`).

    The cross-fade runs the same element-wise operations on the same rows as one full-length accumulator
    would (zero, add each window's weighted rows, divide by the summed weights), so the result is identical.
    """
    num_conv = model.config.num_conv_frames(waveform.shape[-1])
    stats = first_layer_stats(model, waveform)
    windows = plan_windows(num_frames, window_frames, overlap_frames)
    if len(windows) == 1:
        features = frame_aligned_features(model, waveform, num_conv, num_frames, windows[0], stats)
        yield model.transform(features[None])[0]
        return
    cfg = model.config
    pending = torch.zeros(0, cfg.num_layers, cfg.hidden_size, dtype=waveform.dtype, device=waveform.device)
    weight_sum = torch.zeros(0, dtype=pending.dtype, device=pending.device)
    first = 0  # the video frame of pending[0]
    for i, win in enumerate(windows):
        final = win.start - first  # rows before this window are complete
        if final > 0:
            yield pending[:final].div(weight_sum[:final, None, None])
            pending, weight_sum, first = pending[final:], weight_sum[final:], win.start
        grow = win.end - first - pending.shape[0]
        pending = torch.cat([pending, pending.new_zeros(grow, *pending.shape[1:])])
        weight_sum = torch.cat([weight_sum, weight_sum.new_zeros(grow)])
        features = frame_aligned_features(model, waveform, num_conv, num_frames, win, stats)  # [n, C]
        hidden = model.transform(features[None])[0]  # [n, L, D]
        weight = crossfade_weights(windows, i).to(pending)
        pending[win.start - first:win.end - first].addcmul_(hidden, weight[:, None, None])
        weight_sum[win.start - first:win.end - first] += weight
        del features, hidden  # free this window before the next one is built
    yield pending.div_(weight_sum[:, None, None])
