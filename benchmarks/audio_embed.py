"""Audio embedding benchmark: seconds of audio encoded per second, and peak memory, against duration.

    python benchmarks/audio_embed.py                                   # tiny encoder, CPU: 10 s, 60 s, 600 s
    python benchmarks/audio_embed.py --config chinese-wav2vec2-base    # real size, random weights
    python benchmarks/audio_embed.py --seconds 10 60 --runs 3 --json out/audio_embed.json

Each duration runs in its own process, so its peak RSS is its own. The waveform is a synthetic voiced
signal (harmonics with a syllable envelope); speed and memory do not depend on the weights, so random
weights stand in for the real ones. The warm-up encode (on 2 s of audio) is excluded; the time is the
median of ``--runs`` runs of ``encode_speech`` at 25 fps with the default 60 s windows. Columns:
``peak RSS`` is the whole process during the encodes (interpreter, torch, model, input, output);
``encode extra`` is the peak minus the RSS just before the timed encodes (input and model already
resident), i.e. the working set of the encoder plus its [T, L, D] output; ``working`` is that less the
output, the part that must stay flat in duration. The peak counter is reset
before the timed encodes (Linux ``/proc/self/clear_refs``), so building the input does not count.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkgen_core.audio import build_wav2vec2, encode_speech  # noqa: E402

MIB = 1024 * 1024
SAMPLE_RATE = 16000


@dataclass
class Row:
    config: str
    audio_s: float
    frames: int
    encode_s: float
    audio_s_per_s: float
    output_mb: float
    peak_rss_mb: float
    encode_extra_mb: float

    @property
    def working_mb(self) -> float:
        """Encoder working set: the extra peak less the output it returns."""
        return self.encode_extra_mb - self.output_mb


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (Linux clear_refs "5"); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset() -> int:
    """VmHWM from /proc (reset by ``reset_peak_rss``), else the lifetime peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss_bytes()


def voiced_signal(seconds: float, seed: int = 0, piece_s: float = 10.0) -> torch.Tensor:
    """A cheap speech-like waveform [S]: six harmonics of a gliding pitch, 4 Hz syllables, breath noise.

    Built in 10 s pieces so that making a 600 s input does not itself set the process's peak memory.
    """
    rng = np.random.default_rng(seed)
    total = int(seconds * SAMPLE_RATE)
    out = np.empty(total, dtype=np.float32)
    phase0 = 0.0
    for a in range(0, total, int(piece_s * SAMPLE_RATE)):
        b = min(total, a + int(piece_s * SAMPLE_RATE))
        t = np.arange(a, b, dtype=np.float64) / SAMPLE_RATE
        phase = phase0 + 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.5 * t)) / SAMPLE_RATE
        phase0 = float(phase[-1])
        x = sum(np.sin(k * phase) / k for k in range(1, 7)) * np.abs(np.sin(2 * np.pi * 2 * t))
        out[a:b] = 0.15 * x + 0.003 * rng.standard_normal(b - a)
    return torch.from_numpy(out)


def run_case(config: str, seconds: float, runs: int) -> Row:
    torch.manual_seed(0)
    model = build_wav2vec2(config)
    encode_speech(model, voiced_signal(2.0))  # warm-up
    wave = voiced_signal(seconds)
    base = current_rss_bytes()
    reset_peak_rss()
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        out = encode_speech(model, wave)  # [T, L, D]
        times.append(time.perf_counter() - start)
        del out  # one output alive at a time
    median = statistics.median(times)
    frames = int(round(wave.numel() * 25.0 / SAMPLE_RATE))
    output_mb = frames * model.config.num_layers * model.config.hidden_size * 4 / MIB
    peak = peak_rss_since_reset()
    return Row(config, seconds, frames, median, seconds / median, output_mb, peak / MIB, (peak - base) / MIB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="encoder config: tiny, demo or chinese-wav2vec2-base")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0, 600.0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per duration (median reported)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(asdict(run_case(args.config, args.seconds[0], args.runs))))
        return

    rows = []
    for seconds in args.seconds:
        cmd = [sys.executable, __file__, "--worker", "--config", args.config, "--seconds", str(seconds),
               "--runs", str(args.runs)]
        result = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(Row(**json.loads(result.stdout.strip().splitlines()[-1])))

    print(f"## wav2vec2 audio embedding ({args.config}, CPU, {torch.get_num_threads()} threads)\n")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; 25 fps, 60 s windows, median of {args.runs} runs after a warm-up\n")
    print("| audio | frames | encode s | audio s / s | output MiB | peak RSS MiB | encode extra MiB | working MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.audio_s:g} s | {r.frames} | {r.encode_s:.2f} | {r.audio_s_per_s:.1f} | {r.output_mb:.1f} | "
              f"{r.peak_rss_mb:.0f} | {r.encode_extra_mb:.0f} | {r.working_mb:.0f} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    main()
