"""Streaming VAE decode: frames per second and peak memory against video length.

    python benchmarks/vae.py                      # tiny config on CPU: 81, 321 and 1281 frames at 128x128
    python benchmarks/vae.py --json vae.json      # also write the rows as JSON

Each CPU length runs in its own process, so its peak RSS (the process high-water mark, imports included) is
its own; the median RSS sampled after every decoded chunk shows the steady working set. Latents are generated
one latent frame at a time and decoded frames go to a sink that drops them, as a video writer would, so only
the decoder's working set and causal cache are resident: memory should be flat in length. The warm-up decode is excluded
from timing; times are the median of ``--repeats`` runs. frames/CPU-s (process CPU time) is shown beside
wall-clock frames/s because on a shared machine the wall clock also measures the neighbours. The GPU section (real Wan2.1 config, 480p, bf16,
random weights: speed and memory do not depend on the values) runs only where CUDA is available.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkgen_core.models.vae import WAN21_LATENT_MEAN, WAN21_LATENT_STD, WanVAE, build_vae  # noqa: E402

MIB = 1024 * 1024


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc); falls back to the process peak elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def latent_source(
    count: int, height: int, width: int, z_dim: int, device: str, dtype: torch.dtype
) -> Iterator[torch.Tensor]:
    """Random latents [1, z, 1, h, w], one frame at a time, so the input never holds the whole video."""
    generator = torch.Generator(device=device).manual_seed(0)
    for _ in range(count):
        yield torch.randn(1, z_dim, 1, height, width, generator=generator, device=device, dtype=dtype)


def decode_streaming(
    vae: WanVAE,
    frames: int,
    height: int,
    width: int,
    device: str,
    dtype: torch.dtype,
    probe: Callable[[], None] | None = None,
) -> float:
    """Decode ``frames`` frames into a sink that drops them (calling ``probe`` per chunk); returns seconds."""
    latents = 1 + (frames - 1) // vae.temporal_stride
    s = vae.spatial_stride
    source = latent_source(latents, height // s, width // s, vae.z_dim, device, dtype)
    written = 0

    def sink(chunk: torch.Tensor) -> None:
        nonlocal written
        written += chunk.shape[2]
        if probe is not None:
            probe()

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    vae.decode_to(source, sink)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    assert written == frames, (written, frames)
    return elapsed


def cpu_worker(frames: int, size: int, repeats: int) -> dict:
    torch.manual_seed(0)
    vae = build_vae("tiny")
    decode_streaming(vae, 9, size, size, "cpu", torch.float32)  # warm-up: kernel selection, allocator pools
    rss_samples: list[int] = []

    def probe() -> None:
        rss_samples.append(current_rss_bytes())

    times, cpu_times = [], []
    for _ in range(repeats):
        cpu_start = time.process_time()
        times.append(decode_streaming(vae, frames, size, size, "cpu", torch.float32, probe))
        cpu_times.append(time.process_time() - cpu_start)
    seconds = statistics.median(times)
    return {
        "config": "tiny",
        "device": "cpu",
        "resolution": f"{size}x{size}",
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": frames / seconds,
        "frames_per_cpu_s": frames / statistics.median(cpu_times),
        "peak_rss_mib": peak_rss_bytes() / MIB,
        "median_rss_mib": statistics.median(rss_samples) / MIB,
    }


# -- side by side with ComfyUI's native Wan VAE (COMFYUI_DIR set) -------------------------------------------

WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}  # big tensors get their own mappings: a free returns them


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


class StepMemory:
    """Working memory of one step (Linux): the peak RSS during it above the RSS just before (``mib``), and
    above the larger of the RSS before and after (``transient_mib``: what the step needs beyond the state it
    leaves, i.e. without the growth of the causal caches over the first steps or the step's output).

    Resetting the high-water mark (``/proc/self/clear_refs``) before each step makes the peak that step's own;
    weights, caches, inputs and earlier outputs are in the baseline, so only what the step allocates counts.
    """

    def __enter__(self) -> StepMemory:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.before = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        peak, after = _status_kib("VmHWM"), _status_kib("VmRSS")
        self.mib = (peak - self.before) / 1024
        self.transient_mib = (peak - max(self.before, after)) / 1024


def _our_steps(mode: str, state_dict: dict, video: torch.Tensor, latents: torch.Tensor) -> Iterator[Callable]:
    """Our VAE's streaming steps (decode: one latent each; encode: the first frame, then 4 frames each)."""
    vae = build_vae("wan21", device="meta")
    vae.load_state_dict(state_dict, assign=True)
    if mode == "decode":
        state = vae.new_decode_state()
        for i in range(latents.shape[2]):
            yield lambda i=i: vae.decode_chunk(latents[:, :, i : i + 1], state)
    else:
        state = vae.new_encode_state()
        for lo, hi in [(0, 1)] + [(t, t + 4) for t in range(1, video.shape[2], 4)]:
            yield lambda lo=lo, hi=hi: vae.encode_chunk(video[:, :, lo:hi], state)


def _native_steps(mode: str, state_dict: dict, video: torch.Tensor, latents: torch.Tensor) -> Iterator[Callable]:
    """ComfyUI's Wan VAE (comfy.sd.VAE on the same weights) driven step by step as its encode/decode loop does:
    decode the first latent, then two at a time; encode the first frame, then two frames at a time."""
    comfy_dir = os.environ["COMFYUI_DIR"]
    sys.path.insert(0, comfy_dir)
    from comfy.cli_args import args as comfy_args

    comfy_args.cpu = True
    import comfy.ldm.wan.vae as wan
    import comfy.sd

    model = comfy.sd.VAE(sd=state_dict).first_stage_model.float()
    if mode == "decode":
        x = latents * torch.tensor(WAN21_LATENT_STD).view(1, -1, 1, 1, 1) + torch.tensor(WAN21_LATENT_MEAN).view(
            1, -1, 1, 1, 1
        )
        x = model.conv2(x)
        cache = [None] * wan.count_cache_layers(model.decoder)
        bounds = [(0, 1)] + [(t, t + 2) for t in range(1, x.shape[2], 2)]
        for lo, hi in bounds:
            yield lambda lo=lo, hi=hi: model.decoder(x[:, :, lo:hi], feat_cache=cache, feat_idx=[0])
    else:
        cache = [None] * wan.count_cache_layers(model.encoder)
        bounds = [(0, 1)] + [(t, t + 2) for t in range(1, video.shape[2], 2)]
        for n, (lo, hi) in enumerate(bounds):
            final = n == len(bounds) - 1
            yield lambda lo=lo, hi=hi, final=final: model.encoder(
                video[:, :, lo:hi], feat_cache=cache, feat_idx=[0], final=final
            )


def compare_worker(impl: str, mode: str, size: int, latent_count: int) -> dict:
    """One implementation, one direction: working memory of each step and the time of all steps."""
    torch.manual_seed(0)
    state_dict = {k: v.clone() for k, v in build_vae("wan21").state_dict().items()}
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 16, latent_count, size // 8, size // 8, generator=g)
    video = torch.rand(1, 3, 1 + 4 * (latent_count - 1), size, size, generator=g) * 2 - 1
    steps_of = _our_steps if impl == "ours" else _native_steps
    with torch.inference_mode():
        for step in steps_of(mode, state_dict, video[:, :, :5], latents[:, :, :2]):  # warm-up, excluded
            step()
        memory, transient, seconds = [], [], 0.0
        for step in steps_of(mode, state_dict, video, latents):
            with StepMemory() as probe:
                start = time.perf_counter()
                out = step()
                seconds += time.perf_counter() - start
            del out
            memory.append(probe.mib)
            transient.append(probe.transient_mib)
    return {"impl": impl, "mode": mode, "size": size, "latents": latent_count, "steps": len(memory),
            "max_step_mib": max(memory), "last_step_mib": memory[-1], "max_transient_mib": max(transient),
            "seconds": seconds}


def run_comparison(size: int, latent_count: int, threads: int) -> list[dict]:
    """Ours and ComfyUI's, decode and encode, each in its own process under one interpreter (COMFYUI_PYTHON)."""
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    rows = []
    for mode in ("decode", "encode"):
        for impl in ("ours", "native"):
            cmd = [python, __file__, "--compare-worker", impl, mode, "--compare-size", str(size),
                   "--compare-latents", str(latent_count), "--threads", str(threads)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **WORKER_ENV})
            if done.returncode != 0:
                raise RuntimeError(f"{impl} {mode} worker failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def comparison_table(rows: list[dict]) -> str:
    by = {(r["impl"], r["mode"]): r for r in rows}
    keys = [("max MiB per step", "max_step_mib"), ("last step MiB", "last_step_mib"),
            ("max transient MiB", "max_transient_mib"), ("s (all steps)", "seconds")]  # fmt: skip
    head = " | ".join(f"{title} ours | native | ratio" for title, _ in keys)
    lines = [f"| direction | steps ours / native | {head} |", "|---|---|" + "---:|" * 3 * len(keys)]
    for mode in ("decode", "encode"):
        o, n = by[("ours", mode)], by[("native", mode)]
        cells = [f"{o[k]:.1f} | {n[k]:.1f} | {o[k] / n[k]:.2f}x" for _, k in keys]
        lines.append(f"| {mode} | {o['steps']} / {n['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_cpu_rows(lengths: list[int], size: int, repeats: int) -> list[dict]:
    rows = []
    for frames in lengths:
        cmd = [sys.executable, __file__, "--worker", str(frames), "--size", str(size), "--repeats", str(repeats)]
        cmd += ["--threads", str(torch.get_num_threads())]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def run_gpu_rows(lengths: list[int], repeats: int) -> list[dict]:
    vae = build_vae("wan21", device="cuda", dtype=torch.bfloat16)
    width, height = 832, 480
    rows = []
    decode_streaming(vae, 5, height, width, "cuda", torch.bfloat16)  # warm-up
    for frames in lengths:
        torch.cuda.reset_peak_memory_stats()
        times = [decode_streaming(vae, frames, height, width, "cuda", torch.bfloat16) for _ in range(repeats)]
        seconds = statistics.median(times)
        rows.append(
            {
                "config": "wan21",
                "device": torch.cuda.get_device_name(),
                "resolution": f"{width}x{height}",
                "frames": frames,
                "seconds": seconds,
                "frames_per_s": frames / seconds,
                "peak_gpu_mib": torch.cuda.max_memory_allocated() / MIB,
            }
        )
    return rows


def markdown(rows: list[dict], extra_columns: list[tuple[str, str]]) -> str:
    head = ["config", "device", "resolution", "frames", "s", "frames/s"] + [title for title, _ in extra_columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["config"], r["device"], r["resolution"], str(r["frames"])]
        cells += [f"{r['seconds']:.2f}", f"{r['frames_per_s']:.1f}"]
        cells += [f"{r[key]:.0f}" for _, key in extra_columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[81, 321, 1281])
    parser.add_argument("--size", type=int, default=128, help="CPU frame side in pixels (multiple of 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-frames", type=int, nargs="+", default=[81, 321])
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--compare-size", type=int, default=256,
                        help="frame side in pixels for the comparison with ComfyUI's native VAE (real Wan2.1 sizes)")
    parser.add_argument("--compare-latents", type=int, default=5, help="latent frames in that comparison")
    parser.add_argument("--skip-streaming", action="store_true", help="only the comparison with ComfyUI's VAE")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--compare-worker", nargs=2, metavar=("IMPL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker is not None:
        print(json.dumps(cpu_worker(args.worker, args.size, args.repeats)))
        return
    if args.compare_worker is not None:
        print(json.dumps(compare_worker(*args.compare_worker, args.compare_size, args.compare_latents)))
        return

    print(f"# VAE streaming decode (torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads)\n")
    cpu_rows: list[dict] = []
    if not args.skip_streaming:
        cpu_rows = run_cpu_rows(args.frames, args.size, args.repeats)
        columns = [("frames/CPU-s", "frames_per_cpu_s"), ("peak RSS MiB", "peak_rss_mib")]
        print(markdown(cpu_rows, columns + [("median RSS while decoding MiB", "median_rss_mib")]))
    comparison: list[dict] = []
    if os.environ.get("COMFYUI_DIR"):
        comparison = run_comparison(args.compare_size, args.compare_latents, torch.get_num_threads())
        print(f"\n## Against ComfyUI's native Wan VAE: Wan2.1 sizes, random weights (the same in both), fp32 CPU, "
              f"{args.compare_size}x{args.compare_size}, {args.compare_latents} latents "
              f"({1 + 4 * (args.compare_latents - 1)} frames)\n")
        print(comparison_table(comparison))
        print("\nMiB per step: peak RSS during the step minus RSS before it (weights, caches and earlier outputs "
              "excluded; the first steps also grow the causal caches); last step: the steady state; transient: "
              "the peak above the larger of the RSS before and after the step. Both run under one interpreter, "
              "each in its own process. A native decode step is 2 latents (the first: 1), ours 1; a native "
              "encode step is 2 frames, ours 4 (the first: 1).")
    else:
        print("\nComparison with ComfyUI's native VAE skipped: set COMFYUI_DIR (and COMFYUI_PYTHON) to run it.")
    gpu_rows: list[dict] = []
    if torch.cuda.is_available():
        gpu_rows = run_gpu_rows(args.gpu_frames, args.repeats)
        print("\n## GPU: real Wan2.1 VAE, bf16, 480p\n")
        print(markdown(gpu_rows, [("peak GPU MiB", "peak_gpu_mib")]))
    else:
        print("\nGPU section skipped: CUDA is not available (it decodes the real Wan2.1 config at 832x480).")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "cpu": cpu_rows, "gpu": gpu_rows,
                                         "native_comparison": comparison}, indent=2))


if __name__ == "__main__":
    main()
