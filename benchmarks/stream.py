"""Streaming sampler benchmark: seconds per chunk, seconds per second of video and peak memory vs video length.

CPU section: the embedded demo model (demo preset: 4 steps, audio CFG 2 batched, ~64 x 64 px) for 10 s, 60 s
and 300 s of synthetic speech-like audio, each in its own process so that its peak RSS is its own. The first
chunk pays one-off kernel warm-up, so the per-chunk figure is the median over chunks 2..n.
GPU section: the same loop on CUDA with a larger config (random weights, a few chunks); skipped without CUDA.
Which context mode drifts less (latent vs pixel) is measured by ``benchmarks/quality.py``.

    python benchmarks/stream.py [--durations 10 60 300] [--json out.json] [--gpu-config wan21-1.3b]

Prints a Markdown table under a header naming the device and torch version; ``--json`` also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def speech_like_audio(seconds: float, sample_rate: int = 16000):
    """Voiced bursts at ~3 Hz with a slow loudness swell, like the acceptance checks' test audio. [S] float32

    Built one second at a time so that making a long test signal does not itself raise the peak memory.
    """
    import torch

    out = torch.empty(int(seconds * sample_rate))
    for start in range(0, out.numel(), sample_rate):
        t = torch.arange(start, min(start + sample_rate, out.numel()), dtype=torch.float64) / sample_rate
        swell = 0.5 + 0.5 * torch.sin(2 * torch.pi * 0.37 * t)
        envelope = (torch.sin(2 * torch.pi * 3.1 * t) > 0).double() * swell
        out[start : start + t.numel()] = (0.3 * envelope * torch.sin(2 * torch.pi * 180 * t)).float()
    return out


def run_one(seconds: float, device: str, dit_config: str | None) -> dict:
    """One run in this process; returns timings and peak memory."""
    import resource
    import time
    import warnings

    import torch

    from talkgen_core.pipeline import DemoWeightsWarning, Models, generate, load_demo_models

    warnings.simplefilter("ignore", DemoWeightsWarning)
    kwargs: dict = {}
    if dit_config is None:
        models = load_demo_models(device)
    else:  # GPU: a full-size DiT, the real VAE and wav2vec2 layout, random weights, the distilled-style preset
        from talkgen_core.audio import build_wav2vec2
        from talkgen_core.models import build_dit, build_vae

        dit = build_dit(dit_config, device=device, dtype=torch.bfloat16).eval()
        models = Models(dit, build_vae("wan21", device=device).eval(),
                        build_wav2vec2("chinese-wav2vec2-base", device=device),
                        {"dit": dit_config, "vae": "wan21", "wav2vec2": "chinese-wav2vec2-base"})
        kwargs = {"size": "480p", "steps": 4, "text_cfg": 1.0, "audio_cfg": 2.0}
    image = torch.rand(3, 64, 64) * 2 - 1
    chunk_times: list[float] = []

    def on_progress(event) -> None:
        if event.kind == "chunk":
            chunk_times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        result = generate(image=image, audio=speech_like_audio(seconds), out=Path(tmp) / "bench.mp4", fps=25,
                          models=models, device=device, progress=on_progress, **kwargs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        total = time.perf_counter() - started
    per_chunk = [b - a for a, b in zip(chunk_times, chunk_times[1:])]
    row = {
        "device": device,
        "model": (dit_config or "demo"),
        "audio_s": seconds,
        "frames": result.frames,
        "size": f"{result.width}x{result.height}",
        "chunks": result.chunks,
        "s_per_chunk": statistics.median(per_chunk) if per_chunk else total,
        "s_per_video_s": total / (result.frames / result.fps),
        "total_s": total,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.startswith("cuda"):
        row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def run_in_subprocess(seconds: float, device: str, dit_config: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, __file__, "--one", str(seconds), "--device", device]
    if dit_config:
        command += ["--gpu-config", dit_config]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark run for {seconds} s failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    lines = ["| device | model | audio s | frames | size | chunks | s/chunk | s per video s | total s | peak RSS MiB |"
             " peak GPU GiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gpu = f"{r['peak_gpu_gib']:.2f}" if "peak_gpu_gib" in r else "-"
        lines.append(f"| {r['device']} | {r['model']} | {r['audio_s']:g} | {r['frames']} | {r['size']} | {r['chunks']} "
                     f"| {r['s_per_chunk']:.2f} | {r['s_per_video_s']:.2f} | {r['total_s']:.1f} "
                     f"| {r['peak_rss_mib']:.0f} | {gpu} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0, 60.0, 300.0])
    parser.add_argument("--gpu-config", default="wan21-1.3b", help="DiT config for the GPU section")
    parser.add_argument("--gpu-durations", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:  # child process: one run, JSON on stdout
        from talkgen_core.commands.generate import keep_peak_memory_flat

        keep_peak_memory_flat()  # the same process setting as `python -m talkgen_core generate`
        config = args.gpu_config if args.device.startswith("cuda") else None
        print(json.dumps(run_one(args.one, args.device, config)))
        return 0

    import torch

    print(f"# Streaming sampler benchmark\n\ntorch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    rows = [run_in_subprocess(s, "cpu", None) for s in args.durations]
    print("## CPU, demo model\n")
    print(table(rows))
    cpu_peaks = [r["peak_rss_mib"] for r in rows]
    print(f"\npeak RSS, longest / shortest run: {max(cpu_peaks) / min(cpu_peaks):.3f}\n")
    print(f"## GPU, {args.gpu_config}\n")
    if not torch.cuda.is_available():
        print("skipped: CUDA is not available on this machine")
    else:
        gpu_rows = [run_in_subprocess(s, "cuda", args.gpu_config) for s in args.gpu_durations]
        print(f"device: {torch.cuda.get_device_name(0)}\n")
        print(table(gpu_rows))
        rows += gpu_rows
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
