"""Calibrate a model's step cache (MagCache's magnitude ratios) from full, uncached sampling.

While a run is inside :func:`recording`, every DiT call computes its blocks as usual and, per guidance pass,
records one :class:`StepPair` against that pass's previous evaluation in the same chunk and sweep: MagCache's
magnitude ratio of the two residuals (mean over tokens of ``||r_t|| / ||r_prev||``), and for reference the
relative L1 change of the first block's modulated input (TeaCache's raw indicator) and of the residual.
:func:`calibration` averages the ratios per pass and evaluation time of the schedule.

For the demo model::

    python -m talkgen_core.models.step_cache_calibration --demo

renders training-domain clips (training identities and voices of :mod:`talkgen_core.synth`, never the held-out
example face or speech), and writes ``talkgen_core/weights/demo-dit.step-cache.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from talkgen_core.models.blocks import BlockInputs
from talkgen_core.models.step_cache import RunBlocksHook, installed, magnitude_ratio, modulated_input, pass_name, relative_l1
from talkgen_core.models.step_cache_fit import FIT_SUFFIX, weights_fingerprint


@dataclass(frozen=True)
class StepPair:
    """One guidance pass's change between two consecutive evaluations of a chunk's sweep."""

    pass_name: str
    t_previous: float
    t: float
    input_change: float  # relative L1 of the first block's modulated input
    output_change: float  # relative L1 of the blocks' residual (output - input)
    magnitude_ratio: float  # MagCache's ratio: mean over tokens of ||residual|| / ||previous residual||


@dataclass
class _Seen:
    t: float
    modulated: torch.Tensor  # [1, L, C] float32
    residual: torch.Tensor  # [1, L, C] float32


@dataclass
class ChunkRecorder(RunBlocksHook):
    """Per chunk, like a step cache that never skips: records a :class:`StepPair` per pass and evaluation."""

    pairs: list[StepPair]
    seen: dict[Hashable, _Seen] = field(default_factory=dict)
    last_t: Optional[float] = None

    def run_blocks(self, run: Callable[[torch.Tensor, BlockInputs], torch.Tensor], dit: nn.Module,
                   passes: Sequence[Hashable], t: float, h: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        if self.last_t is not None and t > self.last_t:  # a new sweep: pairs never span two
            self.seen.clear()
        self.last_t = t
        modulated = modulated_input(dit, h, inputs)  # [B, L, C]
        out = run(h, inputs)
        residual = (out - h).float()
        for i, key in enumerate(passes):
            now = _Seen(t, modulated[i:i + 1], residual[i:i + 1])
            before = self.seen.get(key)
            if before is not None and before.residual.shape == now.residual.shape:
                self.pairs.append(StepPair(pass_name(key), before.t, t,
                                           relative_l1(now.modulated, before.modulated),
                                           relative_l1(now.residual, before.residual),
                                           magnitude_ratio(now.residual, before.residual)))
            self.seen[key] = now
        return out



@dataclass
class _RecorderFactory:
    pairs: list[StepPair]

    def chunk_cache(self) -> ChunkRecorder:
        return ChunkRecorder(self.pairs)


@contextmanager
def recording(dit: nn.Module) -> Iterator[list[StepPair]]:
    """Record the :class:`StepPair` of every DiT call made inside the block (nothing is skipped)."""
    pairs: list[StepPair] = []
    with installed(dit, _RecorderFactory(pairs)):
        yield pairs


def calibration(pairs: Sequence[StepPair], times: Sequence[float]) -> dict:
    """MagCache's ratios per pass name at each of the schedule's evaluation ``times`` (the first, with nothing
    before it, is 1.0), and per time the mean and spread of the ratio and the mean changes, for the record."""
    names = sorted({p.pass_name for p in pairs})
    ratios: dict[str, list[float]] = {name: [1.0] for name in names}
    steps = []
    for t in times[1:]:
        at = [p for p in pairs if abs(p.t - t) <= 1e-3]
        if not at:
            raise ValueError(f"no recorded step at t = {t:g}: the pairs come from another schedule")
        for name in names:
            mine = [p.magnitude_ratio for p in at if p.pass_name == name]
            if not mine:
                raise ValueError(f"pass {name} has no recorded step at t = {t:g}")
            ratios[name].append(float(np.mean(mine)))
        values = np.array([p.magnitude_ratio for p in at])
        steps.append({"t": t, "pairs": len(at), "mean_ratio": float(values.mean()), "ratio_std": float(values.std()),
                      "mean_input_change": float(np.mean([p.input_change for p in at])),
                      "mean_output_change": float(np.mean([p.output_change for p in at]))})
    return {"magnitude_ratios": ratios, "per_step": steps}


def schedule_times(pairs: Sequence[StepPair]) -> list[float]:
    """The evaluation times the pairs were recorded at, first to last (one sweep's schedule)."""
    return sorted({round(p.t_previous, 6) for p in pairs} | {round(p.t, 6) for p in pairs}, reverse=True)


# ---------------------------------------------------------------- the demo model's calibration run
DEMO_CLIP_SEEDS = tuple(range(8))  # training clips make_clip(i): training identities and voices
DEMO_CLIP_SECONDS = 6.0  # two chunks (81 frames, then 72 new ones, at 25 fps)


def demo_pairs(seeds: Sequence[int] = DEMO_CLIP_SEEDS,
               seconds: float = DEMO_CLIP_SECONDS) -> tuple[list[StepPair], object]:
    """Full (uncached) demo sampling of the training clips ``seeds``; returns the pairs and the demo models."""
    from PIL import Image

    from talkgen_core.pipeline import generate, load_demo_models
    from talkgen_core.synth import DEFAULT_FPS, make_clip
    from talkgen_core.synth.make_examples import FACE_SIZE, write_wav

    models = load_demo_models()
    if models.random_weights:
        raise RuntimeError("the demo weights are missing (talkgen_core/weights/); a fit on random weights means "
                           "nothing: train or download them first")
    pairs: list[StepPair] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            clip = make_clip(seed, num_frames=int(round(seconds * DEFAULT_FPS)), size=FACE_SIZE)
            face, voice = Path(tmp) / f"face{seed}.png", Path(tmp) / f"voice{seed}.wav"
            Image.fromarray(clip.frames[0].permute(1, 2, 0).numpy()).save(face)
            write_wav(voice, clip.audio)
            with recording(models.dit) as recorded:
                generate(image=face, audio=voice, models=models)
            pairs.extend(recorded)
    return pairs, models


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m talkgen_core.models.step_cache_calibration",
        description="Measure MagCache's magnitude ratios for the demo model and write them next to its weights.")
    parser.add_argument("--demo", action="store_true", required=True, help="calibrate the shipped demo model")
    parser.add_argument("--clips", type=int, default=len(DEMO_CLIP_SEEDS), help="training clips 0..N-1 to sample")
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON (default: next to the weights)")
    args = parser.parse_args(argv)

    from talkgen_core.models.demo import DEMO_WEIGHT_FILES, WEIGHTS_DIR

    seeds = tuple(range(args.clips))
    pairs, models = demo_pairs(seeds)
    times = schedule_times(pairs)
    weights = DEMO_WEIGHT_FILES["dit"]
    fit = {
        "model": "demo", "weights": weights, "weights_fingerprint": weights_fingerprint(models.dit),
        "rule": "magcache: per pass and step, mean over tokens of ||residual_t|| / ||residual_(t-1)||",
        "schedule": {"steps": len(times), "times": times,
                     "note": "generate()'s demo schedule; another step count or shift matches nothing"},
        **calibration(pairs, times),
        "fitted_on": {"clips": f"talkgen_core.synth.make_clip(seed) for seed in {list(seeds)} (training identities "
                               "and voices; first frame as the image)",
                      "seconds_per_clip": DEMO_CLIP_SECONDS, "sampling": "generate() defaults for the demo, no cache",
                      "command": "python -m talkgen_core.models.step_cache_calibration --demo"
                                 + (f" --clips {args.clips}" if args.clips != len(DEMO_CLIP_SEEDS) else "")},
        "raw_pairs": [asdict(p) for p in pairs],
    }
    out = args.out or WEIGHTS_DIR / (Path(weights).name.removesuffix(".safetensors") + FIT_SUFFIX)
    out.write_text(json.dumps(fit, indent=1) + "\n")
    print(json.dumps({k: fit[k] for k in ("schedule", "magnitude_ratios", "per_step")}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
