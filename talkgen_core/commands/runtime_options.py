"""``generate``'s options for how the DiT runs (block swap, step cache, sequence parallel) and ``--report``.

Sequence parallel runs under ``torchrun``: every rank runs the same command; rank 0 writes the video and the
report, the others compute with it and discard their frames.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import torch

from talkgen_core.files.atomic import write_bytes_atomic


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("memory and speed")
    group.add_argument("--offload-blocks", type=int, default=0, metavar="N",
                       help="keep N DiT blocks in CPU memory (pinned) and copy each to the device just ahead of use; "
                            "same output, less device memory (e.g. 20 of the 14B model's 40 blocks for a 24 GB card)")
    group.add_argument("--step-cache", type=float, default=0.0, metavar="THRESHOLD",
                       help="skip DiT forwards and reuse the last computed residual while the accumulated error "
                            "stays below THRESHOLD, per guidance pass: MagCache's |1 - ratio product| from the "
                            "model's calibration for these weights and this schedule (at most 2 skips in a row), "
                            "else TeaCache's raw change of the modulated input (logged, and the report's "
                            "step_cache_rule); 0 = off (see README for the demo's trade-off)")
    group.add_argument("--sequence-parallel", type=int, default=1, metavar="N",
                       help="split each DiT forward over N processes (Ulysses); start with torchrun "
                            "--nproc_per_node N -m talkgen_core generate ... --sequence-parallel N")
    group.add_argument("--report", default=None, metavar="FILE.json",
                       help="write frames, chunks, dit_forwards, seconds and peak memory of the run as JSON")


def runtime_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The generate() keywords of these options."""
    return {"offload_blocks": args.offload_blocks, "step_cache": args.step_cache,
            "sequence_parallel": args.sequence_parallel}


def start_ranks(args: argparse.Namespace) -> int:
    """Join the torchrun process group for ``--sequence-parallel N`` (N > 1); returns this process's rank.

    On CUDA each rank takes the GPU of its LOCAL_RANK (NCCL); on the CPU the ranks talk over gloo.
    """
    ranks = args.sequence_parallel
    if ranks == 1:
        return 0
    if ranks < 1:
        raise ValueError(f"--sequence-parallel must be at least 1, got {ranks}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != ranks:
        raise ValueError(f"--sequence-parallel {ranks} needs {ranks} processes, found {world}; start it as "
                         f"torchrun --nproc_per_node {ranks} -m talkgen_core generate ... --sequence-parallel {ranks}")
    if args.job_dir is not None:
        raise ValueError("--job-dir cannot be combined with --sequence-parallel (every rank must sample every chunk); "
                         "drop --job-dir, or run on one process")
    import torch.distributed as dist

    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(args.device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank()


class DiscardFrames:
    """A frame sink for the ranks that do not write (the frames are rank 0's too)."""

    def write(self, frames: torch.Tensor) -> None:
        del frames

    def close(self) -> None:
        return None


def output_for_rank(args: argparse.Namespace, rank: int) -> dict[str, Any]:
    """generate()'s output keyword: the --out file on rank 0, a discarding sink elsewhere."""
    return {"out": args.out} if rank == 0 else {"sink": DiscardFrames()}


def write_report(args: argparse.Namespace, result) -> None:
    """``--report FILE.json``: :meth:`GenerateResult.report` of the run."""
    if args.report is None:
        return
    write_bytes_atomic(args.report, (json.dumps(result.report(), indent=2) + "\n").encode())
