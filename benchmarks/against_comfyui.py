"""Our DiT against ComfyUI's native Wan2.1 model + MultiTalk patch, side by side in one process
(``dit_forward.py --against-comfyui``).

Equal config, weights (ComfyUI's model is loaded with our state dict), dtype, torch and attention kernel
(SDPA). The run happens under ComfyUI's Python (``COMFYUI_PYTHON``, re-executed when this is another one), so
both models use ComfyUI's torch. Per latent grid: one warm-up forward of each, then ``rounds`` alternated
rounds (native, ours eager, ours compiled); medians are printed with the ratio ours / native and the outputs'
relative difference. Native's audio tokens are projected once per chunk outside its forward, as its
``WanInfiniteTalkToVideo`` node does; ours are projected inside every forward, so our figure includes them.

On the CPU the time is the process's CPU time (user + system, all threads): on a CPU shared with other jobs it
is far steadier than wall time, which is printed too. On a GPU both are wall time after a synchronise.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from talkgen_core.models.configs import variant
from talkgen_core.models.dit import build_dit

NATIVE_CLIP_DIM = 1280  # ComfyUI's WanModel hard-codes CLIP ViT-H's width


@dataclass
class Comparison:
    config: str
    layers: int
    dtype: str
    device: str
    grid: str  # latent T x H x W
    tokens: int
    native_s: float  # median per forward (CPU time on the CPU)
    ours_s: float
    ratio: float  # ours / native: target <= 0.83
    ours_compiled_s: float | None
    compiled_ratio: float | None
    native_wall_s: float
    ours_wall_s: float
    rel_diff: float  # max |ours - native| / max |native|
    compiled_rel_diff: float | None
    compile_s: float | None  # first compiled forward (compilation included)


def in_comfyui_python(argv: list[str]) -> int | None:
    """Re-run this command under ``COMFYUI_PYTHON`` when set and not already running; its exit code, else None."""
    comfy_python = os.environ.get("COMFYUI_PYTHON")
    if not comfy_python or os.path.abspath(sys.executable) == os.path.abspath(comfy_python):
        return None
    script = Path(__file__).resolve().parent / "dit_forward.py"
    return subprocess.run([comfy_python, str(script), *argv], check=False).returncode


def _clock(device: torch.device) -> Callable[[], tuple[float, float]]:
    """(measured, wall) seconds since an arbitrary origin: CPU time on the CPU, synchronised wall time on CUDA."""
    if device.type == "cuda":
        def cuda_clock() -> tuple[float, float]:
            torch.cuda.synchronize()
            now = time.perf_counter()
            return now, now

        return cuda_clock
    return lambda: (time.process_time(), time.perf_counter())


def _inputs(config, grid: tuple[int, int, int], device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    frames, height, width = grid
    video = config.vae_scale * (frames - 1) + 1

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    return {
        "x": r(1, config.out_dim, frames, height, width),
        "t": torch.tensor([500.0], device=device),
        "context": r(1, config.text_len, config.text_dim),
        "cond": r(1, config.in_dim - config.out_dim, frames, height, width),
        "clip_fea": r(1, 257, config.clip_dim),
        "audio": r(1, 1, video, config.audio_window, config.audio_layers, config.audio_dim),
    }


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def compare(
    config_name: str, layers: int | None, dtype: torch.dtype, grids: list[tuple[int, int, int]], rounds: int,
    with_compile: bool, device: torch.device,
) -> list[Comparison]:
    from native_wan import NativeWan, import_comfy

    comfy = import_comfy()
    changes = {"clip_dim": NATIVE_CLIP_DIM} | ({"num_layers": layers} if layers else {})
    config = variant(config_name, **changes)
    ours = build_dit(config, device=device, dtype=dtype).eval()
    native = NativeWan.from_dit(comfy, ours, dtype)
    # same seed, same weights; a model of its own, so the eager one never switches compiled code in and out
    compiled_model = build_dit(config, device=device, dtype=dtype).eval().set_compile() if with_compile else None
    clock = _clock(device)
    rows = []
    for grid in grids:
        inputs = _inputs(config, grid, device)
        with torch.no_grad():
            audio_embeds = native.audio_embeds(inputs["audio"])
            runs: dict[str, Callable[[], torch.Tensor]] = {
                "native": lambda: native.forward(inputs, audio_embeds),
                "ours": lambda: ours(**inputs),
            }
            outputs = {name: run() for name, run in runs.items()}  # warm-up, excluded
            compile_s = None
            if compiled_model is not None:
                runs["compiled"] = lambda: compiled_model(**inputs)
                start = clock()[1]
                outputs["compiled"] = runs["compiled"]()  # compiles (once per grid)
                compile_s = clock()[1] - start
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
            for _ in range(rounds):
                for name, run in runs.items():
                    begin = clock()
                    run()
                    end = clock()
                    times[name].append((end[0] - begin[0], end[1] - begin[1]))
        med = {name: statistics.median(t for t, _ in ts) for name, ts in times.items()}
        wall = {name: statistics.median(w for _, w in ts) for name, ts in times.items()}
        compiled = med.get("compiled")
        rows.append(Comparison(
            config=config_name, layers=config.num_layers, dtype=str(dtype).removeprefix("torch."),
            device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            grid="x".join(map(str, grid)), tokens=grid[0] * (grid[1] // 2) * (grid[2] // 2),
            native_s=med["native"], ours_s=med["ours"], ratio=med["ours"] / med["native"],
            ours_compiled_s=compiled, compiled_ratio=None if compiled is None else compiled / med["native"],
            native_wall_s=wall["native"], ours_wall_s=wall["ours"],
            rel_diff=_rel(outputs["ours"], outputs["native"]),
            compiled_rel_diff=None if compiled is None else _rel(outputs["compiled"], outputs["native"]),
            compile_s=compile_s,
        ))  # fmt: skip
    return rows


def table(rows: list[Comparison]) -> str:
    out = [
        "| config (layers) | dtype | latent T x H x W | tokens | native s | ours s | ours / native | ours compiled s "
        "| compiled / native | rel. diff (eager, compiled) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        comp = "-" if r.ours_compiled_s is None else f"{r.ours_compiled_s:.3f}"
        comp_ratio = "-" if r.compiled_ratio is None else f"{r.compiled_ratio:.3f}"
        comp_diff = "-" if r.compiled_rel_diff is None else f"{r.compiled_rel_diff:.1e}"
        out.append(
            f"| {r.config} ({r.layers}) | {r.dtype} | {r.grid} | {r.tokens} | {r.native_s:.3f} | {r.ours_s:.3f} | "
            f"{r.ratio:.3f} | {comp} | {comp_ratio} | {r.rel_diff:.1e}, {comp_diff} |"
        )
    return "\n".join(out)


def main(args) -> int:
    """``args``: dit_forward.py's parsed options (``--against-comfyui`` and the options next to it)."""
    if not os.environ.get("COMFYUI_DIR"):
        print("--against-comfyui needs COMFYUI_DIR (a ComfyUI checkout) and, for its torch, COMFYUI_PYTHON",
              file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    grids = [tuple(int(v) for v in g.split("x")) for g in args.grids]
    rows = compare(args.config, args.layers, getattr(torch, args.dtype), grids, args.runs, args.compile, device)
    print(f"## Our DiT vs ComfyUI native Wan — torch {torch.__version__}, {rows[0].device}, "
          f"{torch.get_num_threads()} CPU threads, SDPA on both sides")  # fmt: skip
    print()
    print(table(rows))
    print()
    clock = "synchronised wall time" if device.type == "cuda" else "process CPU time (wall time in the JSON)"
    print(f"s: median of {args.runs} alternated rounds after a warm-up, {clock}; ours includes the audio "
          "projection, native's is done once per chunk outside its forward. Target: ours / native <= 0.83.")
    for r in rows:
        if r.compile_s is not None:
            print(f"compile time {r.grid}: {r.compile_s:.0f} s (first compiled forward, wall)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0
