"""GPU check: the official Wan2.1-I2V-14B + InfiniteTalk configuration at random weights, on one GPU, in minutes.

    python benchmarks/gpu_check.py [--json out/gpu_check.json] [--offload-blocks 26] [--budget-s 450]
    python benchmarks/gpu_check.py --smoke      # the same sections on the tiny config on the CPU, in seconds

Sections (one table row each; a section that fails or would overrun the time budget is reported as such and
the rest still run; the JSON is rewritten after every section, so a killed run keeps what it measured):

* ``block``: one 14B block at 480p / 81 frames (21 x 30 x 52 = 32 760 tokens), bf16: TFLOP/s against the
  device's dense bf16 peak (target >= 60 %).
* ``chunk``: a 4-step chunk (one pass per step, as with a distillation LoRA) of the full model, resident in
  bf16: seconds (target <= 12 s on an H100-class GPU) and peak VRAM.
* ``attention sdpa|flash|sage``: one full forward per attention backend whose package is installed.
* ``step cache``: the same chunk with ``--step-cache`` (threshold ``--step-cache``): forwards computed, seconds.
* ``block swap``: the chunk with ``--offload-blocks`` blocks in pinned CPU memory: seconds and peak VRAM
  (target: fits 24 GB).
* ``compile``: ``torch.compile`` per block (``models/compile.py``): compile seconds and the forward speed-up.
* ``fp8``: weights stored as scaled fp8 (e4m3fn), compute in bf16: seconds and peak VRAM. Last, since the
  conversion is in place.

Memory: the model is built on the meta device and allocated once on the GPU in bf16, then randomly
initialised there (never an fp32 copy, never on the CPU); block swap's host copies are the only CPU copies.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dit_forward import _peak_tflops, run_block  # noqa: E402
from talkgen_core.models.attention import available_backends  # noqa: E402
from talkgen_core.models.block_swap import block_swap  # noqa: E402
from talkgen_core.models.compile import compile_blocks, uncompile_blocks  # noqa: E402
from talkgen_core.models.dit import WanDiT, build_dit, count_parameters  # noqa: E402
from talkgen_core.models.layers import convert_weights  # noqa: E402
from talkgen_core.models.runtime import RunStats, counted_forwards  # noqa: E402
from talkgen_core.models.step_cache import StepCacheConfig, step_cache  # noqa: E402
from talkgen_core.sampling.schedules import flow_timesteps  # noqa: E402
from talkgen_core.sampling.solvers import euler  # noqa: E402
from talkgen_core.sampling.wrappers import ChunkConditioning, DiTVelocity  # noqa: E402


@dataclass(frozen=True)
class Setup:
    """What a run measures: model, device, dtype, latent grid of one chunk and its steps."""

    config: str
    device: str
    dtype: torch.dtype
    latent: tuple[int, int, int]  # latent frames, height, width (patch 1 x 2 x 2 -> tokens = T * H/2 * W/2)
    steps: int = 4
    shift: float = 5.0


FULL = Setup("wan21-i2v-14b", "cuda", torch.bfloat16, (21, 60, 104))  # 480 x 832, 81 frames
SMOKE = Setup("tiny", "cpu", torch.float32, (3, 8, 8))


@dataclass
class Row:
    section: str
    seconds: Optional[float] = None  # the section's main timing (see detail)
    peak_gb: Optional[float] = None  # peak device memory (CUDA max allocated; CPU: not measured)
    detail: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None


class Check:
    """The model and inputs shared by the sections; sections run in order on one model."""

    def __init__(self, setup: Setup, offload_blocks: int, threshold: float) -> None:
        self.setup, self.offload_blocks, self.threshold = setup, offload_blocks, threshold
        self.device = torch.device(setup.device)
        self.cuda = self.device.type == "cuda"
        self.model: Optional[WanDiT] = None
        self.eager_forward_s: Optional[float] = None

    # ------------------------------------------------------------------ helpers
    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gb(self) -> Optional[float]:
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.cuda else None

    def timed(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        self.sync()
        start = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - start, out

    def conditioning(self) -> ChunkConditioning:
        cfg = self.model.config
        frames, height, width = self.setup.latent
        g = torch.Generator(device=self.device).manual_seed(0)

        def r(*shape):
            return torch.randn(*shape, generator=g, device=self.device)

        video = cfg.vae_scale * (frames - 1) + 1
        return ChunkConditioning(
            cond=r(1, cfg.in_dim - cfg.out_dim, frames, height, width), context=r(1, cfg.text_len, cfg.text_dim),
            clip_fea=r(1, 257, cfg.clip_dim), audio=r(1, 1, video, cfg.audio_window, cfg.audio_layers, cfg.audio_dim),
        )  # fmt: skip

    def noise(self) -> torch.Tensor:
        g = torch.Generator(device=self.device).manual_seed(1)
        return torch.randn(1, self.model.config.out_dim, *self.setup.latent, generator=g, device=self.device)

    @torch.no_grad()
    def chunk(self, cache: Optional[float] = None) -> tuple[float, RunStats]:
        """Seconds of one ``steps``-step chunk (one pass per step) and the forwards it computed."""
        timesteps = flow_timesteps(self.setup.steps, self.setup.shift)
        config = None if cache is None else StepCacheConfig.for_schedule(cache, timesteps)
        stats = RunStats()
        conditioning = self.conditioning()
        with step_cache(self.model, config), counted_forwards(self.model, stats):
            velocity = DiTVelocity(self.model, conditioning)
            seconds, _ = self.timed(lambda: euler(velocity, self.noise(), timesteps))
        return seconds, stats

    @torch.no_grad()
    def forward_s(self) -> float:
        """Seconds of one full forward (the first step of a chunk)."""
        velocity = DiTVelocity(self.model, self.conditioning())
        x = self.noise()
        return self.timed(lambda: velocity(x, 1000.0))[0]

    # ------------------------------------------------------------------ sections
    def block(self) -> Row:
        frames, height, width = self.setup.latent
        row = run_block(3, name=self.setup.config, device=self.setup.device, grid=(frames, height // 2, width // 2))
        peak = _peak_tflops(row.device) if self.cuda else None
        share = f", {row.tflops / peak:.0%} of the {peak:.0f} TFLOP/s bf16 peak" if peak and row.tflops else ""
        return Row("block", row.s_per_forward, row.peak_mb / 1024 if self.cuda else None,
                   f"{row.tflops:.1f} TFLOP/s{share} ({row.tokens} tokens)",
                   {"tflops": row.tflops, "peak_tflops": peak, "tokens": row.tokens})

    def build(self) -> Row:
        seconds, model = self.timed(lambda: build_dit(self.setup.config, device=self.setup.device,
                                                      dtype=self.setup.dtype, seed=0))
        self.model = model.eval().requires_grad_(False)
        return Row("build (random init on the device)", seconds, self.peak_gb(),
                   f"{count_parameters(self.model) / 1e9:.2f} B parameters in {self.setup.dtype}")

    def resident(self) -> Row:
        self.forward_s()  # warm-up, excluded
        self.reset_peak()
        seconds, stats = self.chunk()
        self.eager_forward_s = seconds / max(stats.dit_forwards, 1)
        return Row("chunk resident", seconds, self.peak_gb(),
                   f"{self.setup.steps} steps, {stats.dit_forwards} forwards, {self.eager_forward_s:.2f} s each",
                   {"forwards": stats.dit_forwards})

    def attention(self) -> list[Row]:
        rows = []
        for backend in ("sdpa", "flash", "sage"):
            if backend not in available_backends():
                rows.append(Row(f"attention {backend}", detail="not installed"))
                continue
            try:
                self.model.set_attention_backend(backend)
                self.forward_s()  # warm-up
                rows.append(Row(f"attention {backend}", self.forward_s(), self.peak_gb(), "one full forward"))
            except Exception as exc:  # a backend that cannot run these tensors: reported, the others still run
                rows.append(Row(f"attention {backend}", error=f"{type(exc).__name__}: {exc}"))
            finally:
                self.model.set_attention_backend("sdpa")
        return rows

    def step_cache(self) -> Row:
        base = self.setup.steps
        seconds, stats = self.chunk(cache=self.threshold)
        saved = 1 - stats.dit_forwards / base
        return Row(f"step cache {self.threshold:g}", seconds, self.peak_gb(),
                   f"{stats.dit_forwards}/{base} forwards computed ({saved:.0%} saved; random weights)",
                   {"forwards": stats.dit_forwards, "of": base, "saved": saved})

    def compile(self) -> Row:
        options = {} if self.cuda else {"backend": "eager"}  # smoke: the wiring, not a C++ toolchain
        compile_blocks(self.model, **options)
        try:
            compile_s = self.forward_s()  # the first call compiles
            self.forward_s()
            compiled = self.forward_s()
        finally:
            uncompile_blocks(self.model)
        eager = self.eager_forward_s or self.forward_s()
        return Row("compile", compiled, self.peak_gb(),
                   f"{eager / compiled:.2f}x vs eager ({eager:.2f} s -> {compiled:.2f} s a forward; first call "
                   f"{compile_s:.0f} s)", {"speedup": eager / compiled, "compile_s": compile_s})

    def block_swap(self) -> Row:
        n = min(self.offload_blocks, len(self.model.blocks))
        with block_swap(self.model, n, self.device) as swap:
            self.forward_s()  # warm-up: pins nothing new, fills the allocator
            self.reset_peak()
            seconds, stats = self.chunk()
            copies = swap.copies if swap is not None else 0
        return Row(f"block swap {n}", seconds, self.peak_gb(),
                   f"{n} of {len(self.model.blocks)} blocks in pinned CPU memory, {copies} block copies",
                   {"offload_blocks": n, "copies": copies})

    def fp8(self) -> Row:
        convert_weights(self.model, torch.float8_e4m3fn)
        self.model.set_compute_dtype(torch.bfloat16 if self.cuda else torch.float32)
        self.forward_s()  # warm-up
        self.reset_peak()
        seconds, stats = self.chunk()
        converted = sum(p.dtype == torch.float8_e4m3fn for p in self.model.parameters())
        return Row("fp8 weights", seconds, self.peak_gb(),
                   f"{converted} weights e4m3fn + per-tensor scale, {stats.dit_forwards} forwards",
                   {"fp8_weights": converted})


def _table(rows: list[Row]) -> str:
    lines = ["| section | seconds | peak GB | detail |", "|---|---:|---:|---|"]
    for r in rows:
        seconds = "-" if r.seconds is None else f"{r.seconds:.3f}"
        peak = "-" if r.peak_gb is None else f"{r.peak_gb:.1f}"
        lines.append(f"| {r.section} | {seconds} | {peak} | {r.error or r.detail} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny config on the CPU (CI): every section in seconds")
    parser.add_argument("--json", type=Path, default=Path("out/gpu_check.json"), help="where to write the rows")
    parser.add_argument("--offload-blocks", type=int, default=26, help="blocks kept in CPU memory in the swap row")
    parser.add_argument("--step-cache", type=float, default=0.1, help="threshold of the step-cache row")
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip the sections left after this many seconds")
    args = parser.parse_args(argv)
    setup = SMOKE if args.smoke else FULL
    if setup.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run with --smoke for the CPU check", file=sys.stderr)
        return 2
    if args.smoke:
        torch.set_num_threads(1)
    check = Check(setup, args.offload_blocks, args.step_cache)
    device = torch.cuda.get_device_name() if check.cuda else platform.processor() or platform.machine()
    header = {"device": device, "torch": torch.__version__, "config": setup.config, "latent": setup.latent,
              "steps": setup.steps, "dtype": str(setup.dtype)}
    started = time.perf_counter()
    rows: list[Row] = []
    sections: list[tuple[str, Callable[[], Any]]] = [
        ("block", check.block), ("build", check.build), ("chunk resident", check.resident),
        ("attention", check.attention), ("step cache", check.step_cache), ("block swap", check.block_swap),
        ("compile", check.compile), ("fp8 weights", check.fp8),  # fp8 last: the conversion is in place
    ]
    for name, section in sections:
        if time.perf_counter() - started > args.budget_s:
            rows.append(Row(name, error=f"skipped: past the {args.budget_s:.0f} s budget"))
        elif name != "block" and name != "build" and check.model is None:
            rows.append(Row(name, error="skipped: the model could not be built"))
        else:
            try:
                result = section()
                rows += result if isinstance(result, list) else [result]
            except Exception as exc:  # report it and go on: one failing section must not cost the others
                rows.append(Row(name, error=f"{type(exc).__name__}: {exc}"[:300]))
            if check.cuda:
                gc.collect()
                torch.cuda.empty_cache()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "seconds": time.perf_counter() - started,
                                         "rows": [asdict(r) for r in rows]}, indent=2, default=str))
    print(f"## GPU check: {setup.config} on {device}, torch {torch.__version__}, latent {setup.latent}, "
          f"{setup.steps} steps, {time.perf_counter() - started:.0f} s in all")
    print()
    print(_table(rows))
    failed = [r.section for r in rows if r.error and not r.error.startswith("skipped")]
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
