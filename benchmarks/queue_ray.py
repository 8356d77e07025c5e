"""Queue throughput: N short demo jobs in-process (the models loaded again for every job) vs on Ray actors that
keep the models loaded, with 1 and 2 actors, on a local Ray cluster.

Prints wall times and the ratios side by side. Actor start-up (placement + model load) is timed apart from
the batch, since it is paid once per actor, not per job. Run: ``python benchmarks/queue_ray.py [--jobs N]``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from talkgen_core.queue.batch import BatchOptions, run_batch  # noqa: E402
from talkgen_core.queue.inprocess_runner import InProcessRunner  # noqa: E402
from talkgen_core.queue.ray_runner import RayOptions, import_ray, ray_runners  # noqa: E402

SETTINGS = "chunk_frames,context_frames,size,steps\n"


def make_inputs(folder: Path, seconds: float) -> tuple[Path, Path]:
    t = np.arange(int(seconds * 16000)) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 200 * t) * (np.sin(2 * np.pi * 3 * t) > 0) * 32767).astype(np.int16)
    audio = folder / "voice.wav"
    with wave.open(str(audio), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(samples.tobytes())
    image = np.full((48, 40, 3), 120, np.uint8)
    image[12:36, 10:30] = (220, 180, 150)
    face = folder / "face.png"
    Image.fromarray(image).save(face)
    return face, audio


def manifest(folder: Path, face: Path, audio: Path, jobs: int) -> Path:
    folder.mkdir(parents=True)
    rows = "".join(f"{face},{audio},job{n:03d},{n},17,5,16x16,1\n" for n in range(jobs))
    path = folder / "jobs.csv"
    path.write_text("image,audio,output,seed," + SETTINGS + rows)
    return path


def timed_batch(path: Path, runners) -> float:
    started = time.perf_counter()
    status = run_batch(BatchOptions(path), runners=runners, stream=io.StringIO())
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"batch {path} failed (status {status}); see its journal")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio length of each job")
    args = parser.parse_args()
    ray = import_ray()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        face, audio = make_inputs(root, args.seconds)
        timed_batch(manifest(root / "warm", face, audio, 1), [InProcessRunner()])  # imports, first-call costs
        in_process = timed_batch(manifest(root / "inproc", face, audio, args.jobs), [InProcessRunner()])

        ray.init(num_cpus=min(2, cores), include_dashboard=False, log_to_driver=False)
        results: dict[int, tuple[float, float]] = {}
        for actors in (1, 2):
            started = time.perf_counter()
            runners = ray_runners(RayOptions(actors=actors), retries=1)
            for runner in runners:
                runner.check()  # placed and models loaded
            startup = time.perf_counter() - started
            timed_batch(manifest(root / f"warm{actors}", face, audio, actors), runners)  # each actor's first job
            batch = timed_batch(manifest(root / f"ray{actors}", face, audio, args.jobs), runners)
            loads = sum(runner.stats().model_loads for runner in runners)
            for runner in runners:
                runner.close()
            results[actors] = (batch, startup)
            assert loads == actors, f"{loads} model loads on {actors} actor(s)"
        ray.shutdown()

    one, two = results[1][0], results[2][0]
    print(f"queue: {args.jobs} jobs of {args.seconds:g} s audio, demo model at 16x16, 1 step; {cores} CPU core(s)")
    print(f"{'runner':38s} {'batch s':>8s} {'s/job':>7s}")
    print(f"{'in-process, models reloaded per job':38s} {in_process:8.2f} {in_process / args.jobs:7.3f}")
    for actors in (1, 2):
        batch, startup = results[actors]
        label = f"ray, {actors} actor(s) keeping the models"
        print(f"{label:38s} {batch:8.2f} {batch / args.jobs:7.3f}   (actor start-up {startup:.1f} s, once)")
    print(f"ratios: 2 actors vs 1 actor {one / two:.2f}x faster | 1 actor keeping the models vs in-process "
          f"reload per job {in_process / one:.2f}x faster")


if __name__ == "__main__":
    main()
