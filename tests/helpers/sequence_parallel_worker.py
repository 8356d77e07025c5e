"""A rank of the sequence-parallel test: the tiny DiT's forward under gloo, saved for the parent to compare."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from helpers.dit_inputs import dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.sequence_parallel import sequence_parallel


def forwards(model, split: bool) -> dict[str, torch.Tensor]:
    """One-speaker and two-speaker (mask-routed) forwards, over the ranks when ``split``."""
    one = dit_inputs(model.config, frames=3, size=4)
    two = dit_inputs(model.config, frames=3, size=4, speakers=2, seed=1)
    masks = torch.zeros(2, 4, 4)
    masks[0, :, :2], masks[1, :, 2:] = 1, 1
    with torch.no_grad(), (sequence_parallel(model) if split else torch.no_grad()) as ulysses:
        out = {
            "one": model(one["x"], one["t"], one["context"], one["cond"], one["clip_fea"], one["audio"]),
            "two": model(two["x"], two["t"], two["context"], two["cond"], two["clip_fea"], two["audio"],
                         speaker_masks=masks, audio_scale=torch.tensor([1.0, 0.5]), speaker_routing="mask"),
        }
        if split:  # tokens per rank of the last forward: proof that it was split
            out["tokens"] = torch.tensor(ulysses.tokens)
        return out


def run_rank(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        model = build_dit("tiny", seed=7).eval()
        torch.save(forwards(model, split=True), Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
