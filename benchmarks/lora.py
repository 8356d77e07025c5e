"""LoRA cost per DiT forward: no LoRA, merged (the default) and unmerged (forward hooks), side by side.

    python benchmarks/lora.py                    # Wan2.1-1.3B sizes, 2 blocks, 1950 tokens, rank 64, fp32, CPU
    python benchmarks/lora.py --layers 4 --rank 32 --grid 5 30 52 --dtype bfloat16 --rounds 5

The LoRA touches every linear layer of every block (as the lightx2v distillation LoRAs do). The three
variants are timed in alternated rounds on one model (the LoRA is applied and removed around each timed
forward batch), and each figure is the median over rounds, so drift on a shared CPU hits all three alike.
The one-off cost of merging and restoring (once per sampling run, not per step) is timed separately.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkgen_core.models.configs import get_dit_config  # noqa: E402
from talkgen_core.models.dit import WanDiT, build_dit  # noqa: E402
from talkgen_core.models.layers import CastLinear  # noqa: E402
from talkgen_core.models.lora import apply_lora, read_lora  # noqa: E402


def random_lora(model: WanDiT, rank: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """lora_down / lora_up / alpha for every linear layer inside the blocks (lightx2v's coverage)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in model.named_modules():
        if name.startswith("blocks.") and isinstance(module, CastLinear):
            state[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(rank, module.in_features, generator=g) * 0.01
            state[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=g) * 0.01
            state[f"diffusion_model.{name}.alpha"] = torch.tensor(float(rank))
    return state


def model_inputs(model: WanDiT, frames: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """Seeded inputs following the DiT forward contract (text padded to text_len, 257 CLIP tokens, 1 speaker)."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    video = c.vae_scale * (frames - 1) + 1
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return {
        "x": r(1, c.out_dim, frames, height, width),
        "t": torch.tensor([500.0]),
        "context": r(1, c.text_len, c.text_dim),
        "cond": r(1, c.in_dim - c.out_dim, frames, height, width),
        "clip_fea": r(1, 257, c.clip_dim),
        "audio": r(1, 1, video, c.audio_window, c.audio_layers, c.audio_dim),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="wan21-1.3b")
    parser.add_argument("--layers", type=int, default=2, help="blocks kept (the per-forward ratio does not depend on it)")
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--grid", type=int, nargs=3, default=(5, 30, 52), metavar=("T", "H", "W"),
                        help="latent frames, height, width (tokens = T * H/2 * W/2)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds; each times one forward per variant")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = replace(get_dit_config(args.config), num_layers=args.layers)
    model = build_dit(config, dtype=getattr(torch, args.dtype)).eval()
    inputs = model_inputs(model, *args.grid)
    patches = read_lora(random_lora(model, args.rank), model)
    tokens = args.grid[0] * (args.grid[1] // 2) * (args.grid[2] // 2)

    def forward_seconds() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            model(**inputs)
        return time.perf_counter() - start

    def with_lora(merge: bool) -> float:
        handle = apply_lora(model, patches, merge=merge)
        try:
            return forward_seconds()
        finally:
            handle.remove()

    variants = {"no LoRA": forward_seconds, "merged (default)": lambda: with_lora(True),
                "unmerged (hooks)": lambda: with_lora(False)}  # fmt: skip
    for run in variants.values():  # warm-up, excluded
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            times[name].append(run())
    merge_restore = []
    for _ in range(3):
        start = time.perf_counter()
        apply_lora(model, patches).remove()
        merge_restore.append(time.perf_counter() - start)

    base = statistics.median(times["no LoRA"])
    best_base = min(times["no LoRA"])
    print(f"## LoRA cost per forward: {args.config} sizes, {args.layers} blocks, {tokens} tokens, rank {args.rank}, "
          f"{args.dtype}; torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads")
    print()
    print("| variant | s / forward (median) | vs no LoRA | best s | best vs no LoRA |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        median, best = statistics.median(values), min(values)
        print(f"| {name} | {median:.4f} | {median / base - 1:+.1%} | {best:.4f} | {best / best_base - 1:+.1%} |")
    print()
    print(f"merge + restore, once per sampling run: {statistics.median(merge_restore):.3f} s "
          f"({len(patches)} layers); medians of {args.rounds} alternated rounds after a warm-up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
