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

from talkgen_core.models.vae import WanVAE, build_vae  # noqa: E402

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
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker is not None:
        print(json.dumps(cpu_worker(args.worker, args.size, args.repeats)))
        return

    print(f"# VAE streaming decode (torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads)\n")
    cpu_rows = run_cpu_rows(args.frames, args.size, args.repeats)
    columns = [("frames/CPU-s", "frames_per_cpu_s"), ("peak RSS MiB", "peak_rss_mib")]
    print(markdown(cpu_rows, columns + [("median RSS while decoding MiB", "median_rss_mib")]))
    gpu_rows: list[dict] = []
    if torch.cuda.is_available():
        gpu_rows = run_gpu_rows(args.gpu_frames, args.repeats)
        print("\n## GPU: real Wan2.1 VAE, bf16, 480p\n")
        print(markdown(gpu_rows, [("peak GPU MiB", "peak_gpu_mib")]))
    else:
        print("\nGPU section skipped: CUDA is not available (it decodes the real Wan2.1 config at 832x480).")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "cpu": cpu_rows, "gpu": gpu_rows}, indent=2))


if __name__ == "__main__":
    main()
