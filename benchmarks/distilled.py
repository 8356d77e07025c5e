"""The distilled demo student against its teacher and today's demo preset, side by side in one run.

A held-out face speaks held-out synthetic speech; each row renders it through ``pipeline.generate`` and is
measured with ``talkgen_core.metrics``:

* ``student``: ``--demo-model distilled`` with its own preset (``demo-distilled``: its grid, one pass a step);
* ``teacher``: the base demo DiT with the official recipe's step count and audio guidance (40 steps, CFG 4);
* ``demo preset``: the base demo DiT as ``make demo`` runs it (4 steps, audio CFG 2).

Targets (issue "step + CFG distillation"): the student >= 15x faster than the teacher and >= 2x faster than the
demo preset, best lag within +-1, correlation within 0.05 of the teacher's, colour drift and seam ratio not
worse than the preset's by more than 10 %. ``render_s`` is the time inside ``generate`` (the model loaded);
``process_s`` adds what a command-line run pays besides (interpreter, imports, loading the model), measured once
as a process that imports the CLI and loads the demo model, so the two ratios bracket what a user sees.

    python benchmarks/distilled.py [--seconds 12] [--weights-dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from talkgen_core.metrics import drift, lip_sync, seam_ratio
from talkgen_core.pipeline import generate, load_demo_models
from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.synth import render_reference, sample_identity, synthesize_speech

HELD_OUT_IDENTITY = 11
HELD_OUT_SPEECH = 900_123
ROWS = {
    "student": ("distilled", {}),
    "teacher": ("base", {"steps": 40, "audio_cfg": 4.0}),
    "demo preset": ("base", {}),
}
CHUNK_FRAMES, CONTEXT_FRAMES = 81, 9


def startup_seconds() -> float:
    """Wall time of a command-line start that loads the demo model and stops: what every CLI run adds."""
    code = "import talkgen_core.commands.generate; from talkgen_core.pipeline import load_demo_models; load_demo_models()"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def measure(variant: str, settings: dict, seconds: float, weights_dir: Path | None) -> dict:
    models = load_demo_models(weights_dir=weights_dir, variant=variant)
    reference = render_reference(sample_identity(HELD_OUT_IDENTITY), 64).float() / 127.5 - 1.0  # [3, H, W]
    audio = synthesize_speech(HELD_OUT_SPEECH, int(seconds * 16000))
    with torch.no_grad():
        result = generate(audio=audio, image=reference, models=models, size="64x64", seed=0,
                          chunk_frames=CHUNK_FRAMES, context_frames=CONTEXT_FRAMES, colour_strength=0.0, **settings)
    frames = result.images.permute(0, 3, 1, 2) * 2.0 - 1.0  # [T, 3, H, W] in [-1, 1]
    sync = lip_sync(frames, audio, 16000, 25.0)
    stability = drift(frames, reference, 25.0)
    boundaries = [c.output_start for c in ChunkPlan(result.frames, CHUNK_FRAMES, CONTEXT_FRAMES).chunks()[1:]]
    return {
        "render_s": result.seconds, "dit_forwards": result.dit_forwards, "best_lag": sync.best_lag,
        "correlation": sync.peak_correlation, "face_colour_slope": stability.face_colour_slope,
        "background_colour_slope": stability.background_colour_slope,
        "seam_ratio": seam_ratio(frames, boundaries).ratio if boundaries else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the held-out clip")
    parser.add_argument("--weights-dir", type=Path, default=None, help="demo weights (default: the shipped ones)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    startup = startup_seconds()
    rows = {name: measure(variant, settings, args.seconds, args.weights_dir)
            for name, (variant, settings) in ROWS.items()}
    for row in rows.values():
        row["process_s"] = row["render_s"] + startup
    student = rows["student"]
    print(f"{args.seconds:.0f} s of held-out video, 64 x 64, one thread; CLI start-up {startup:.2f} s")
    print("| row | render s | + start-up s | DiT passes | best lag | correlation | face colour slope | "
          "background colour slope | seam ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        seam = "-" if r["seam_ratio"] is None else f"{r['seam_ratio']:.2f}"
        print(f"| {name} | {r['render_s']:.2f} | {r['process_s']:.2f} | {r['dit_forwards']} | {r['best_lag']} | "
              f"{r['correlation']:.3f} | {r['face_colour_slope']:.3f} | {r['background_colour_slope']:.3f} | {seam} |")
    for other in ("teacher", "demo preset"):
        print(f"student vs {other}: {rows[other]['render_s'] / student['render_s']:.1f}x faster rendering, "
              f"{rows[other]['process_s'] / student['process_s']:.1f}x as whole processes")
    if args.json:
        args.json.write_text(json.dumps({"startup_s": startup, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
