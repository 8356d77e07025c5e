"""Rotary position embeddings: the DiT's 3-D (frame, height, width) RoPE and the 1-D label RoPE of the audio
attention.

Both rotate *interleaved* channel pairs ``(2i, 2i+1)`` as complex numbers. The 3-D variant splits the
``head_dim / 2`` complex pairs of a head into time / height / width groups; at head_dim 128 that is 22 / 21 / 21
(time takes what the two equal spatial groups leave). Angles are computed in float64, the rotation is
applied as a complex64 multiply, and the result is cast back to the input dtype.
"""

from __future__ import annotations

from functools import lru_cache

import torch


def rope_axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs given to (time, height, width): height = width = (head_dim / 2) // 3, time the rest."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    pairs = head_dim // 2
    spatial = pairs // 3
    return pairs - 2 * spatial, spatial, spatial


def axis_frequencies(pairs: int, theta: float) -> torch.Tensor:
    """Frequencies ``theta ** (-2i / (2 * pairs))`` for i < pairs, float64, shape [pairs]."""
    exponents = torch.arange(0, 2 * pairs, 2, dtype=torch.float64) / (2 * pairs)
    return theta**-exponents


def rope_3d_angles(
    grid: tuple[int, int, int], head_dim: int, theta: float = 10000.0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Rotation angles for a (frames, height, width) token grid whose positions start at 0.

    Returns float64 ``[F * H * W, head_dim / 2]`` in token order frame-major, then row, then column.
    """
    frames, height, width = grid
    pt, ph, pw = rope_axis_pairs(head_dim)
    parts = []
    for size, pairs, view in ((frames, pt, (-1, 1, 1)), (height, ph, (1, -1, 1)), (width, pw, (1, 1, -1))):
        pos = torch.arange(size, dtype=torch.float64, device=device)
        ang = pos[:, None] * axis_frequencies(pairs, theta).to(device)[None, :]  # [size, pairs]
        parts.append(ang.view(*view, pairs).expand(frames, height, width, pairs))
    return torch.cat(parts, dim=-1).reshape(frames * height * width, head_dim // 2)


def rope_1d_angles(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Angles for fractional 1-D positions (label RoPE): ``[..., N] -> [..., N, head_dim / 2]`` float64."""
    freqs = axis_frequencies(head_dim // 2, theta).to(positions.device)
    return positions.to(torch.float64)[..., None] * freqs


def rope_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Unit complex rotations (complex64) from float64 angles (taken in float64 so large positions stay exact)."""
    return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)


@lru_cache(maxsize=8)
def rope_3d_table(
    grid: tuple[int, int, int], head_dim: int, theta: float, device: torch.device
) -> torch.Tensor:
    """``rope_rotation(rope_3d_angles(grid, head_dim, theta, device))``, memoised: complex64 [F * H * W, D / 2].

    Every forward on the same latent grid gets the same table, keyed on all it depends on (grid, head size,
    theta, device); the table is read-only for its users. It is made outside inference mode, so a forward with
    autograd on can use a table first made under ``torch.inference_mode``.
    """
    with torch.inference_mode(False):
        return rope_rotation(rope_3d_angles(grid, head_dim, theta, device=device))


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of ``x`` [B, L, H, D] as complex numbers, in float32.

    ``rotation`` is complex [L, D/2] (shared by the batch) or [B, L, D/2]; it broadcasts over heads.
    """
    b, length, heads, dim = x.shape
    rot = rotation[None, :, None, :] if rotation.dim() == 2 else rotation[:, :, None, :]
    if torch.compiler.is_compiling():  # inductor has no code generation for complex numbers: same product, real pairs
        re, im = x.float().reshape(b, length, heads, dim // 2, 2).unbind(-1)
        cos, sin = torch.view_as_real(rot).unbind(-1)
        return torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1).reshape(x.shape).to(x.dtype)
    xc = torch.view_as_complex(x.float().reshape(b, length, heads, dim // 2, 2))
    return torch.view_as_real(xc * rot).reshape(b, length, heads, dim).to(x.dtype)
