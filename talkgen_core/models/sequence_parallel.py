"""Ulysses sequence parallel: one chunk's DiT forward over the ranks of a ``torch.distributed`` group.

Every rank runs the same pipeline (same inputs, seed and noise); only the transformer blocks are split. The
residual stream's tokens are divided by latent frame (rank r holds a contiguous run of whole frames, so the
frame-local audio attention stays local); per-token work (projections, norms, FFN, text / image / audio
cross-attention) runs on the rank's own tokens. Self-attention needs every token: its q, k, v go through an
all-to-all that trades the token split for a head split (rank r gets all tokens of heads
``r H/N .. (r+1) H/N``), attention runs on full sequences, and a second all-to-all returns the output to the
token split (DeepSpeed-Ulysses, Jacobs et al. 2023). After the last block the ranks all-gather the stream, so
the head and everything after it are identical everywhere. The result equals one process up to the float
rounding of a different reduction order.

Uneven splits are fine (frames need not divide by N); the head count must divide by N. Two-speaker label-RoPE
routing normalises its affinity map over all tokens and is refused (use mask routing or one rank).
NCCL on GPUs, gloo on CPUs (the tests).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

from talkgen_core.models.attention import attention
from talkgen_core.models.blocks import BlockInputs
from talkgen_core.models.seams import wrapped_method


def frame_split(frames: int, ranks: int) -> list[int]:
    """Frames per rank, as even as possible, earlier ranks taking the remainder."""
    base, extra = divmod(frames, ranks)
    return [base + (r < extra) for r in range(ranks)]


class Ulysses:
    """The all-to-all exchanges of one group; ``tokens`` is the per-rank token count of the current forward."""

    def __init__(self, group: Optional[dist.ProcessGroup] = None) -> None:
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.tokens: list[int] = []

    def _exchange(self, send: list[torch.Tensor], receive_numels: list[int], like: torch.Tensor) -> list[torch.Tensor]:
        """Send ``send[r]`` to rank r, get a flat tensor of ``receive_numels[r]`` elements from each rank r."""
        flat = torch.cat([s.reshape(-1) for s in send])
        out = torch.empty(sum(receive_numels), dtype=like.dtype, device=like.device)
        dist.all_to_all_single(out, flat, receive_numels, [s.numel() for s in send], group=self.group)
        return list(out.split(receive_numels))

    def to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L_r, H, D] (own tokens, all heads) -> [B, L, H / N, D] (all tokens, own heads)."""
        b, _, heads, dim = x.shape
        per = heads // self.world
        send = [x[:, :, r * per:(r + 1) * per] for r in range(self.world)]
        got = self._exchange(send, [b * n * per * dim for n in self.tokens], x)
        return torch.cat([g.view(b, n, per, dim) for g, n in zip(got, self.tokens)], dim=1)

    def to_tokens(self, y: torch.Tensor) -> torch.Tensor:
        """[B, L, H / N, D] -> [B, L_r, H, D]: the inverse of :meth:`to_heads`."""
        b, _, per, dim = y.shape
        mine = self.tokens[self.rank]
        got = self._exchange(list(y.split(self.tokens, dim=1)), [b * mine * per * dim] * self.world, y)
        return torch.cat([g.view(b, mine, per, dim) for g in got], dim=2)

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "sdpa") -> torch.Tensor:
        """Self-attention over the full sequence of the rank's local tokens ``[B, L_r, H, D]`` -> same."""
        out = attention(self.to_heads(q), self.to_heads(k), self.to_heads(v), backend=backend)
        return self.to_tokens(out)

    def gather_tokens(self, h: torch.Tensor) -> torch.Tensor:
        """The ranks' [B, L_r, C] pieces -> the full [B, L, C] on every rank."""
        longest = max(self.tokens)
        padded = torch.nn.functional.pad(h, (0, 0, 0, longest - h.shape[1])).contiguous()
        pieces = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(pieces, padded, group=self.group)
        return torch.cat([p[:, :n] for p, n in zip(pieces, self.tokens)], dim=1)

    def run_blocks(self, run, h: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """``run`` (the blocks) on this rank's frames of ``h`` [B, L, C] -> the full [B, L, C]."""
        if inputs.routing is not None and inputs.routing.needs_affinity:
            raise ValueError("sequence parallel cannot split two-speaker label-RoPE routing (its affinity map spans "
                             "all tokens); use speaker_routing='mask' or run on one rank")
        frames, height, width = inputs.grid
        if frames < self.world:
            raise ValueError(f"sequence parallel over {self.world} ranks needs at least {self.world} latent frames per "
                             f"chunk, got {frames}; use fewer ranks or longer chunks")
        per_frame = height * width
        split = frame_split(frames, self.world)
        self.tokens = [n * per_frame for n in split]
        first = sum(split[: self.rank])
        lo, hi = first * per_frame, (first + split[self.rank]) * per_frame
        rope = inputs.rope[lo:hi] if inputs.rope.dim() == 2 else inputs.rope[:, lo:hi]
        local = dataclasses.replace(
            inputs, rope=rope, grid=(split[self.rank], height, width), self_attention=self.attention,
            audio=None if inputs.audio is None else inputs.audio[:, first:first + split[self.rank]],
        )  # fmt: skip
        return self.gather_tokens(run(h[:, lo:hi].contiguous(), local))


def check_sequence_parallel(ranks: int) -> bool:
    """Validate a ``sequence_parallel`` setting against the process group; True when it splits (ranks > 1)."""
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"sequence_parallel must be a whole number of ranks >= 1, got {ranks!r}")
    if ranks == 1:
        return False
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if world != ranks:
        raise ValueError(f"sequence_parallel={ranks} needs {ranks} processes in one torch.distributed group, found "
                         f"{world}; start it as: torchrun --nproc_per_node {ranks} -m talkgen_core generate ... "
                         f"--sequence-parallel {ranks}")
    return True


@contextmanager
def sequence_parallel(dit: nn.Module, group: Optional[dist.ProcessGroup] = None) -> Iterator[Optional[Ulysses]]:
    """Split ``dit``'s blocks over the ranks of ``group`` (the default group) for the ``with`` block.

    A group of one rank (or no initialised group) changes nothing and yields None.
    """
    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size(group) == 1:
        yield None
        return
    heads = dit.config.num_heads
    ulysses = Ulysses(group)
    if heads % ulysses.world:
        raise ValueError(f"sequence parallel needs the head count ({heads}) to divide by the ranks ({ulysses.world})")
    with wrapped_method(dit, "run_blocks", lambda run: lambda h, inputs: ulysses.run_blocks(run, h, inputs)):
        yield ulysses
