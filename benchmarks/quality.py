"""Long-video strategies compared on the same model: lip sync, identity/colour drift and chunk seams.

A held-out synthetic identity (never seen in training) speaks a held-out speech-like track for two minutes;
the embedded demo model renders it with each strategy, and ``talkgen_core.metrics`` measures the result:

* ``naive chaining``: image-to-video per chunk, the previous chunk's last frame becomes the next reference
  (and its only context frame); nothing ties later chunks to the original image.
* ``first+last rigid``: each chunk starts from the previous chunk's last frame and its last latent frame is
  pinned to the reference image (keyframe interpolation).
* ``infinitetalk latent``: 9 context frames carried as clean latents + the reference in every chunk (ours, default).
* ``infinitetalk pixel``: the same with the official decode -> encode round trip for the context.
* ``sliding-window``: overlapping windows fused at every step, streamed as a wavefront (default overlap 9).
* ``memory-bank``: the InfiniteTalk chain plus a noised bank of earlier latents (defaults: 3 entries, one new
  every 2 chunks, sigma_m 0.1), with the shipped weights, which were trained without a bank.

Colour correction is off in every row so that it hides no drift. Targets for ours: best lag within +-1 frame,
correlation >= 0.6, colour drift slope near zero and clearly below naive chaining, seam ratio <= 1.5 (<= 1.3
for sliding-window, which has no hand-off). Each strategy renders in a process of its own, so its peak RSS is
its own (frames are kept on disk for the measures, not in memory); ``s_per_video_s`` is render seconds per
second of video.

    python benchmarks/quality.py [--seconds 120] [--steps 4] [--weights DIR] [--strategy NAME ...] [--json out.json]
    python benchmarks/quality.py --seconds 600 --strategy "infinitetalk latent" --strategy sliding-window \
        --strategy memory-bank   # the 10-minute comparison
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import torch

HELD_OUT_IDENTITY = 11  # below FIRST_TRAINING_IDENTITY_SEED, and not one of the example_inputs faces
SPEECH_SEED = 424242
FPS = 25.0
STRATEGIES = ("naive chaining", "first+last rigid", "infinitetalk latent", "infinitetalk pixel", "sliding-window",
              "memory-bank")


class TapSink:
    """Spills frames (float32, exactly as rendered) to a file, so they do not count in the render's memory, and
    remembers the last one (the chained reference)."""

    def __init__(self, path: Path) -> None:
        self.path, self.handle = path, open(path, "wb")
        self.last: torch.Tensor | None = None
        self.shape: tuple[int, ...] = ()
        self.count = 0

    def write(self, frames: torch.Tensor) -> None:  # [T, 3, H, W] in [-1, 1]
        self.handle.write(frames.detach().float().contiguous().numpy().tobytes())
        self.shape, self.count = tuple(frames.shape[1:]), self.count + frames.shape[0]
        self.last = frames[-1].clone()

    def close(self) -> None:
        self.handle.close()

    def frames(self) -> torch.Tensor:
        """[T, 3, H, W] in [-1, 1]"""
        return torch.from_numpy(np.fromfile(self.path, dtype=np.float32).reshape(self.count, *self.shape))


class ChainedReference:
    """Naive chaining: the reference of chunk k > 0 is the last frame written so far."""

    def __init__(self, image: torch.Tensor, sink: TapSink) -> None:
        self.image, self.sink, self.size = image, sink, tuple(image.shape[-2:])

    def reference_for(self, chunk, fps: float) -> torch.Tensor:
        return self.image if chunk.index == 0 or self.sink.last is None else self.sink.last

    def colour_reference(self) -> torch.Tensor:
        return self.image

    def source_frames_for(self, chunk, fps: float):
        return None


def render(models, speech, image, strategy: str, steps: int, seed: int,
           sink: TapSink) -> tuple[list[int], float, float]:
    """Render into ``sink``; the chunk boundaries, the seconds it took and the peak RSS (MiB) so far."""
    from talkgen_core.sampling.guidance import GuidanceConfig
    from talkgen_core.sampling.references import StillReference
    from talkgen_core.sampling.strategies import get_strategy
    from talkgen_core.sampling.streaming import StreamConditioning, StreamingSampler, StreamSettings

    context_frames = 1 if strategy in ("naive chaining", "first+last rigid") else 9
    own = strategy if strategy in ("sliding-window", "memory-bank") else "infinitetalk"
    settings = StreamSettings(
        steps=steps, seed=seed, colour_strength=0.0, guidance=GuidanceConfig(text_scale=1.0, audio_scale=2.0),
        context_mode="pixel" if strategy in ("naive chaining", "first+last rigid", "infinitetalk pixel") else "latent",
        end_keyframe=strategy == "first+last rigid", strategy=own,
    )
    plan = get_strategy(own)(settings.strategy_params).plan(speech.frames, 81, context_frames)
    size = tuple(image.shape[-2:])
    references = ChainedReference(image, sink) if strategy == "naive chaining" else StillReference(image, size)
    conditioning = StreamConditioning(audio_features=list(speech.features),
                                      context=torch.zeros(1, 1, models.dit.config.text_dim))
    sampler = StreamingSampler(models.dit, models.vae, plan, FPS, references, conditioning, settings)
    started = time.perf_counter()
    sampler.run(sink)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    boundaries = [chunk.output_start for chunk in plan.chunks()[1:]]
    return boundaries, seconds, peak_mib


def measure(frames, boundaries, image, audio, seconds, peak_mib) -> dict:
    from talkgen_core.metrics import drift, lip_sync, seam_ratio

    sync = lip_sync(frames, audio, 16000, FPS)
    moved = drift(frames, image, FPS)
    seams = seam_ratio(frames, boundaries)
    return {
        "best_lag": sync.best_lag, "correlation": round(sync.peak_correlation, 3),
        "sync_confidence": round(sync.confidence, 3),
        "face_colour_slope_per_min": round(60 * moved.face_colour_slope, 3),
        "background_colour_slope_per_min": round(60 * moved.background_colour_slope, 3),
        "shape_error_slope_per_min": round(60 * moved.shape_error_slope, 4),
        "seam_ratio": round(seams.ratio, 3), "render_s": round(seconds, 1),
        "s_per_video_s": round(seconds / (frames.shape[0] / FPS), 3), "peak_rss_mib": round(peak_mib),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the held-out clip (default 120)")
    parser.add_argument("--steps", type=int, default=4, help="solver steps per chunk (default 4, the demo preset)")
    parser.add_argument("--size", type=int, default=64, help="square frame size in pixels (default 64)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--weights", type=Path, default=None,
                        help="a folder of demo weights to measure (default: the shipped talkgen_core/weights/)")
    parser.add_argument("--strategy", action="append", choices=STRATEGIES, default=None,
                        help="measure only this strategy (repeatable; default: all six)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    strategies = args.strategy or list(STRATEGIES)
    if len(strategies) > 1:  # one process per strategy, so each peak RSS is that strategy's own
        rows = [row for strategy in strategies for row in run_alone(strategy)]
    else:
        rows = [measure_one(args, strategies[0])]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


def run_alone(strategy: str) -> list[dict]:
    """This script for one strategy in a child process (same options); its rows."""
    argv, skip = [], False
    for arg in sys.argv[1:]:  # the parent's options without its --strategy and --json choices
        if skip:
            skip = False
        elif arg in ("--strategy", "--json"):
            skip = True
        elif not arg.startswith(("--strategy=", "--json=")):
            argv.append(arg)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rows.json"
        subprocess.run([sys.executable, __file__, *argv, "--strategy", strategy, "--json", str(out)], check=True,
                       stdout=sys.stderr)
        return json.loads(out.read_text())


def measure_one(args, strategy: str) -> dict:
    from talkgen_core.commands.generate import keep_peak_memory_flat

    torch.set_num_threads(1)
    keep_peak_memory_flat()  # as the generate command does

    from talkgen_core.conditioning.speech import embed_speech
    from talkgen_core.pipeline import load_demo_models
    from talkgen_core.synth import render_reference, sample_identity, synthesize_speech

    models = load_demo_models() if args.weights is None else load_demo_models(weights_dir=args.weights)
    audio = synthesize_speech(SPEECH_SEED, int(args.seconds * 16000))
    speech = embed_speech(models.wav2vec2, [audio], fps=FPS)
    image = render_reference(sample_identity(HELD_OUT_IDENTITY), args.size).float() / 127.5 - 1.0  # [3, H, W]
    print(f"# quality: {args.seconds:g} s held-out clip, {args.size}x{args.size}, {args.steps} steps, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{'RANDOM demo weights' if models.random_weights else 'trained demo weights'}\n", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        sink = TapSink(Path(folder) / "frames.f32")
        boundaries, seconds, peak_mib = render(models, speech, image, strategy, args.steps, args.seed, sink)
        return {"strategy": strategy, **measure(sink.frames(), boundaries, image, speech.mix, seconds, peak_mib)}


if __name__ == "__main__":
    main()
