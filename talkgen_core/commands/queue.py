"""``queue``: run a manifest of dubbing jobs on ComfyUI servers, in-process or on a Ray cluster, resumably.

Example: ``python -m talkgen_core queue jobs.csv --workflow workflows/api/infinitetalk_video_dubbing.json --server http://127.0.0.1:8188``
or ``python -m talkgen_core queue jobs.csv --ray`` (a local Ray cluster; ``--ray HEAD:6379`` for a running one).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from talkgen_core.queue.ray_runner import RayOptions

EPILOG = """\
manifest (CSV with a header row, or JSON lines with one object per line):
  video | image     the source, exactly one per job
  audio, audio2...  driving audio, one file per speaker in speaker order
                    (JSON lines may also give "audio": ["a.wav", "b.wav"])
  output            output name, e.g. clip01 or dubs/clip01 (default: the source's file stem)
  prompt, negative_prompt, text_encoder, clip_vision, tokenizer
                    the prompt and the umT5 / CLIP vision files (in-process; paths like the sources)
  anything else     a per-job setting, e.g. seed, steps, audio_cfg, fps; CSV cells are typed
                    (true/false, integers, decimals, else text); an empty cell means "not set"
  Relative paths are relative to the manifest's folder. Every job is checked before anything runs;
  a job with a missing file is reported with its row and marked failed, the others still run.

  example jobs.csv:
    video,audio,audio2,output,seed,audio_cfg
    talk.mp4,en.wav,,talk_en,42,4.5
    duo.mp4,alice.wav,bob.wav,duo_en,7,

workflow slots (--server mode; the workflow must be API format, e.g. workflows/api/NAME.json):
  image   LoadImage.image, and `image` inputs of TalkGen* nodes
  video   LoadVideo.file, and `video` inputs of TalkGen* nodes
  audio   LoadAudio.audio, and `audio` inputs of TalkGen* nodes, filled in ascending node-id order
          with audio, audio2, ...; the number of audio files must equal the number of audio slots
  output  every filename_prefix input is set to the job's output name
  Only literal inputs are filled, never links, and every media slot must be filled by the job.
  A setting replaces the literal input of the same name on every node that has one, converted to the
  type found there; a setting that matches no input is an error. Inputs are uploaded with
  /upload/image under content-hashed names; outputs are fetched into the output folder as
  OUTPUT.ext (OUTPUT_1.ext, OUTPUT_2.ext, ... when the workflow saves several files).

in-process mode (no --server): each job calls talkgen_core.pipeline.generate(image=|video=,
  audio=[...], out=OUTPUT_DIR/OUTPUT.mp4, **settings).

journal: one JSON line per attempt (OUTPUT_DIR/MANIFEST.journal.jsonl unless --journal). A rerun skips
  jobs whose last attempt is done and whose files still exist, and retries the rest. A job is known by a
  hash of its source's and audio's contents, output name and settings, so changing any of them (also
  replacing a file under the same name) makes it a new job. Unchanged files are not read again.

Ray mode (--ray [ADDRESS], needs pip install "talkgen[ray]"): one Ray actor per GPU of the cluster (or per
  --ray-cpus CPUs when it has none) loads the models once and renders job after job in-process; jobs go to
  idle actors and the journal stays on this machine. ADDRESS: none or `auto` joins RAY_ADDRESS or a cluster
  `ray start` runs on this machine, else starts a local cluster for the run; or a running head, e.g.
  10.0.0.5:6379 or ray://10.0.0.5:10001. Every node needs the same talkgen installed. Files: by default the
  inputs are sent with each job and the outputs come back into OUTPUT_DIR (with OUTPUT.ray.json: actor,
  attempts, model loads); --ray-shared-storage when every node sees the inputs and OUTPUT_DIR at the same
  paths. A worker lost mid-job is replaced and the job given to it again (up to --retries times); with a
  job_dir setting it resumes from its last finished chunk when its job folder survived (always on shared
  storage; in copy mode only on the same node). Put --ray after the manifest (or write --ray=ADDRESS): a
  bare word after --ray is taken as the address.

servers that restart: a server that stops answering is waited for up to --server-wait seconds; a job
  whose prompt it lost (a restart empties its queue and history) is queued again, up to --retries times.

exit status: 0 every job done, 1 some job failed, 2 the batch could not start, 130 Ctrl-C.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("manifest", type=Path, help="jobs file: .csv, or .jsonl / .json with one JSON object per line")
    parser.add_argument(
        "--workflow", type=Path, default=None, help="API-format workflow (e.g. workflows/api/NAME.json) to queue; needs --server"
    )
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="URL",
        help="ComfyUI server, e.g. http://127.0.0.1:8188; repeat to spread jobs over several servers "
        "(one job in flight per server). Without it jobs run in this process",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where outputs and the journal go (default: the manifest's folder)",
    )
    parser.add_argument(
        "--journal", type=Path, default=None, help="journal file (default: OUTPUT_DIR/MANIFEST.journal.jsonl)"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, metavar="SECONDS", help="per-job limit on a server (default 3600)"
    )
    parser.add_argument(
        "--server-wait", type=float, default=600.0, metavar="SECONDS",
        help="how long a server that stops answering (e.g. restarting) is waited for before its jobs go to "
        "another server or fail; with --ray, how long an actor may take to start and load its models (default 600)",
    )
    parser.add_argument(
        "--retries", type=int, default=1, metavar="N",
        help="times a job is queued again after its server lost it by restarting, or given to a fresh actor "
        "after its Ray worker was lost (default 1)",
    )
    parser.add_argument(
        "--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
        help='run the jobs on a Ray cluster (pip install "talkgen[ray]"): none or `auto` for the cluster '
        "RAY_ADDRESS names or a local one, or the address of a running Ray head; one actor per GPU keeps the models "
        "loaded",
    )
    parser.add_argument("--ray-actors", type=int, default=None, metavar="N",
                        help="number of Ray actors (default: one per GPU of the cluster, else one per --ray-cpus CPUs)")
    parser.add_argument("--ray-cpus", type=float, default=1.0, metavar="N",
                        help="CPUs per actor on a cluster without GPUs (default 1)")
    parser.add_argument("--ray-shared-storage", action="store_true",
                        help="every Ray node sees the inputs and the output folder at the same paths: workers read "
                        "and write them in place instead of receiving and sending the files")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the manifest (and workflow; in-process also each job's settings and files) "
                        "and show the plan")


def run(args: argparse.Namespace) -> int:
    from talkgen_core.queue.batch import BatchOptions, run_batch
    from talkgen_core.queue.comfyui_client import ServerWait

    for option, value in (("--timeout", args.timeout), ("--server-wait", args.server_wait)):
        if not math.isfinite(value) or value <= 0:
            print(f"error: {option} must be a positive number of seconds, got {value:g}", file=sys.stderr)
            return 2
    if args.retries < 0:
        print(f"error: --retries must be 0 or more, got {args.retries}", file=sys.stderr)
        return 2
    ray = _ray_options(args)
    if isinstance(ray, str):
        print(f"error: {ray}", file=sys.stderr)
        return 2
    options = BatchOptions(
        manifest=args.manifest,
        workflow=args.workflow,
        servers=tuple(args.server),
        output_dir=args.output_dir,
        journal=args.journal,
        job_timeout=args.timeout,
        dry_run=args.dry_run,
        server_wait=ServerWait(limit=args.server_wait),
        retries=args.retries,
        ray=ray,
    )
    try:
        return run_batch(options)
    except KeyboardInterrupt:  # before or after the jobs ran; while they run, run_batch handles it
        print("queue: interrupted", file=sys.stderr)
        return 130


def _ray_options(args: argparse.Namespace) -> RayOptions | str | None:
    """The Ray settings (None without --ray), or the error text for options that do not fit together."""
    from talkgen_core.queue.ray_runner import RayNotInstalled, RayOptions, import_ray

    ray_only = [flag for flag, given in (("--ray-actors", args.ray_actors is not None),
                                         ("--ray-cpus", args.ray_cpus != 1.0),
                                         ("--ray-shared-storage", args.ray_shared_storage)) if given]
    if args.ray is None:
        return f"{', '.join(ray_only)} need(s) --ray" if ray_only else None
    if args.server:
        return "give --server (ComfyUI servers) or --ray (a Ray cluster), not both"
    if args.ray_actors is not None and args.ray_actors < 1:
        return f"--ray-actors must be 1 or more, got {args.ray_actors}"
    if not math.isfinite(args.ray_cpus) or args.ray_cpus <= 0:
        return f"--ray-cpus must be a positive number of CPUs, got {args.ray_cpus:g}"
    try:
        import_ray()
    except RayNotInstalled as exc:
        return str(exc)
    return RayOptions(address=args.ray, actors=args.ray_actors, cpus_per_actor=args.ray_cpus,
                      shared_storage=args.ray_shared_storage, ready_timeout=args.server_wait)
