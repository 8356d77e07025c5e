"""DiT forward benchmark: seconds per forward (median of N after a warm-up) and peak memory.

CPU: the tiny and demo configs at a few token counts, and a Wan2.1-1.3B-sized config at a small token count
(each case runs in its own subprocess so its peak RSS is its own). GPU (when CUDA is present): one 14B block
at 480p / 81 frames (21 x 30 x 52 = 32 760 tokens) in bf16, with achieved TFLOP/s against the device's peak.

    python benchmarks/dit_forward.py [--runs 3] [--json out/dit_forward.json] [--skip-1.3b]
    COMFYUI_DIR=... COMFYUI_PYTHON=... python benchmarks/dit_forward.py --against-comfyui [--layers 8] [--compile]

``--against-comfyui``: our DiT vs ComfyUI's native WanModel side by side (``benchmarks/against_comfyui.py``).

Prints a Markdown table under a header naming the device and torch version, and writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkgen_core.models.blocks import BlockInputs  # noqa: E402
from talkgen_core.models.configs import get_dit_config  # noqa: E402
from talkgen_core.models.dit import WanDiT, build_dit, count_parameters  # noqa: E402
from talkgen_core.models.audio_adapter import SpeakerRouting  # noqa: E402
from talkgen_core.models.rope import rope_3d_angles, rope_rotation  # noqa: E402

# (config, latent frames, latent height, latent width, stored/compute dtype) for the CPU section
CPU_CASES = [
    ("tiny", 3, 16, 16, "float32"),
    ("tiny", 21, 16, 16, "float32"),
    ("demo", 21, 16, 16, "float32"),
    ("demo", 21, 32, 32, "float32"),
    ("wan21-1.3b", 2, 8, 8, "bfloat16"),
]
# dense bf16 peak TFLOP/s by device-name fragment (vendor data sheets, no sparsity)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}


@dataclass
class Row:
    config: str
    device: str
    dtype: str
    shape: str  # latent T x H x W
    tokens: int
    params_m: float
    s_per_forward: float  # median
    best_s: float
    peak_mb: float
    tflops: float | None = None


def _inputs(model: WanDiT, frames: int, height: int, width: int, device: str) -> dict:
    cfg = model.config
    g = torch.Generator(device="cpu").manual_seed(0)
    video = cfg.vae_scale * (frames - 1) + 1

    def r(*shape):
        return torch.randn(*shape, generator=g).to(device)

    return {
        "x": r(1, cfg.out_dim, frames, height, width),
        "t": torch.tensor([500.0], device=device),
        "context": r(1, cfg.text_len, cfg.text_dim),
        "cond": r(1, cfg.in_dim - cfg.out_dim, frames, height, width),
        "clip_fea": r(1, 257, cfg.clip_dim),
        "audio": r(1, 1, video, cfg.audio_window, cfg.audio_layers, cfg.audio_dim),
    }


def _timings(fn, runs: int, sync=lambda: None) -> tuple[float, float]:
    """(median, best) seconds of ``runs`` calls after one excluded warm-up."""
    fn()  # warm-up, excluded
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def run_cpu_case(name: str, frames: int, height: int, width: int, dtype: str, runs: int) -> Row:
    torch.manual_seed(0)
    model = build_dit(name, dtype=getattr(torch, dtype)).eval()
    inputs = _inputs(model, frames, height, width, "cpu")
    with torch.no_grad():
        seconds, best = _timings(lambda: model(**inputs), runs)
    tokens = frames * (height // 2) * (width // 2)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    shape = f"{frames}x{height}x{width}"
    return Row(name, "cpu", dtype, shape, tokens, count_parameters(model) / 1e6, seconds, best, peak_mb)


def block_flops(
    dim: int, ffn: int, tokens: int, frame_tokens: int, context: int, audio_keys: int, audio_dim: int
) -> float:
    """Matmul FLOPs of one block forward (2 per multiply-add)."""
    lin = 2 * tokens * dim * dim
    self_attn = 4 * lin + 4 * tokens * tokens * dim
    cross = 2 * lin + 2 * 2 * context * dim * dim * 2 + 4 * tokens * context * dim
    frames = tokens // frame_tokens
    audio = 2 * lin + 2 * frames * audio_keys * audio_dim * 2 * dim + 4 * tokens * audio_keys * dim
    ffn_flops = 2 * 2 * tokens * dim * ffn
    return float(self_attn + cross + audio + ffn_flops)


def run_block(runs: int, name: str = "wan21-i2v-14b", device: str = "cuda", grid=(21, 30, 52)) -> Row:
    """One DiT block in bf16; by default a 14B block at 480p / 81 frames (21 x 30 x 52 tokens) on CUDA."""
    cfg = get_dit_config(name)
    frames, gh, gw = grid
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    tokens = frames * gh * gw
    with torch.device("meta"):
        model = WanDiT(cfg)
    block = model.blocks[0].to_empty(device=device)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.02)
    block = block.to(torch.bfloat16)
    bf = torch.bfloat16
    rope = rope_rotation(rope_3d_angles((frames, gh, gw), cfg.head_dim, device=device))
    inputs = BlockInputs(
        time_mod=torch.randn(1, 6, cfg.dim, device=device),
        text=torch.randn(1, cfg.text_len, cfg.dim, device=device, dtype=bf),
        image=torch.randn(1, 257, cfg.dim, device=device, dtype=bf),
        rope=rope, grid=(frames, gh, gw),
        audio=torch.randn(1, frames, cfg.audio_context_tokens, cfg.audio_token_dim, device=device, dtype=bf),
        routing=SpeakerRouting(mode="single", num_speakers=1, tokens_per_speaker=cfg.audio_context_tokens),
        compute_dtype=bf,
    )  # fmt: skip
    x = torch.randn(1, tokens, cfg.dim, device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        seconds, best = _timings(lambda: block(x, inputs), runs, sync)
    flops = block_flops(
        cfg.dim, cfg.ffn_dim, tokens, gh * gw, cfg.text_len + 257, cfg.audio_context_tokens, cfg.audio_token_dim
    )
    params = sum(p.numel() for p in block.parameters()) / 1e6
    on_gpu = device == "cuda"
    return Row(
        f"{name} (1 block)", torch.cuda.get_device_name() if on_gpu else device, "bfloat16",
        f"{frames}x{gh * 2}x{gw * 2}", tokens, params, seconds, best,
        torch.cuda.max_memory_allocated() / 2**20 if on_gpu else float("nan"), flops / seconds / 1e12,
    )  # fmt: skip


def _peak_tflops(device_name: str) -> float | None:
    for fragment, peak in PEAK_BF16_TFLOPS.items():
        if fragment in device_name:
            return peak
    return None


def _table(rows: list[Row]) -> str:
    out = [
        "| config | device | dtype | latent T x H x W | tokens | params (M) | s / forward | best s | peak memory (MB) "
        "| TFLOP/s |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        tf = "-" if r.tflops is None else f"{r.tflops:.0f}"
        out.append(
            f"| {r.config} | {r.device} | {r.dtype} | {r.shape} | {r.tokens} | {r.params_m:,.1f} | "
            f"{r.s_per_forward:.4f} | {r.best_s:.4f} | {r.peak_mb:,.0f} | {tf} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed forwards per case (after one warm-up)")
    parser.add_argument("--json", type=Path, default=Path("out/dit_forward.json"), help="where to write the rows")
    parser.add_argument("--skip-1.3b", dest="skip_big", action="store_true", help="leave out the 1.3B CPU case")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads (torch.set_num_threads); 1 gives steadier numbers on a CPU shared with other jobs",
    )  # fmt: skip
    parser.add_argument("--case", nargs=5, metavar=("CONFIG", "T", "H", "W", "DTYPE"), help=argparse.SUPPRESS)
    native = parser.add_argument_group("against ComfyUI (benchmarks/against_comfyui.py)")
    native.add_argument("--against-comfyui", action="store_true",
                        help="time our DiT and ComfyUI's native WanModel + MultiTalk patch side by side (needs "
                             "COMFYUI_DIR; runs under COMFYUI_PYTHON when set, for ComfyUI's torch)")
    native.add_argument("--config", default="wan21-1.3b", help="DiT config for --against-comfyui")
    native.add_argument("--layers", type=int, default=None, help="blocks (default: the config's)")
    native.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    native.add_argument("--grids", nargs="+", default=["5x30x52", "21x30x52"], metavar="TxHxW",
                        help="latent grids (default: 1950 and 8190 tokens)")
    native.add_argument("--compile", action="store_true", help="also time our DiT with torch.compile per block")
    native.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.against_comfyui:
        from against_comfyui import in_comfyui_python, main as against_comfyui

        code = in_comfyui_python(sys.argv[1:] if argv is None else argv)
        if code is not None:
            return code
        if args.json == Path("out/dit_forward.json"):
            args.json = Path("out/dit_vs_comfyui.json")
        return against_comfyui(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.case:  # child process: one CPU case, result as JSON on stdout
        name, t, h, w, dtype = args.case
        print(json.dumps(asdict(run_cpu_case(name, int(t), int(h), int(w), dtype, args.runs))))
        return 0

    rows: list[Row] = []
    for case in CPU_CASES:
        if args.skip_big and case[0] == "wan21-1.3b":
            continue
        cmd = [sys.executable, __file__, "--runs", str(args.runs), "--case", *map(str, case)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"case {case} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return 1
        rows.append(Row(**json.loads(done.stdout.strip().splitlines()[-1])))
    gpu_note = ""
    if torch.cuda.is_available():
        row = run_block(args.runs)
        rows.append(row)
        peak = _peak_tflops(row.device)
        if peak and row.tflops:
            gpu_note = (
                f"GPU: {row.tflops:.0f} TFLOP/s achieved = {row.tflops / peak:.0%} of the {peak:.0f} TFLOP/s "
                "bf16 dense peak"
            )
    else:
        gpu_note = "GPU section skipped: no CUDA device here (one 14B block at 480p/81 frames runs when one is present)"

    print(f"## DiT forward — torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads")  # fmt: skip
    print()
    print(_table(rows))
    print()
    print(f"s / forward: median of {args.runs} after one warm-up (best: fastest run; on a shared CPU it is the "
          "less noisy figure); CPU peak memory is the case's process peak RSS "
          "(weights included); text context padded to the config's text_len, 257 CLIP tokens, 1 speaker.")  # fmt: skip
    print(gpu_note)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
