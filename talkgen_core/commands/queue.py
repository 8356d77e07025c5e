"""``queue``: run a manifest of dubbing jobs on ComfyUI servers or in-process, resumably.

Example: ``python -m talkgen_core queue jobs.csv --workflow workflows/api/infinitetalk_video_dubbing.json --server http://127.0.0.1:8188``
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

EPILOG = """\
manifest (CSV with a header row, or JSON lines with one object per line):
  video | image     the source, exactly one per job
  audio, audio2...  driving audio, one file per speaker in speaker order
                    (JSON lines may also give "audio": ["a.wav", "b.wav"])
  output            output name, e.g. clip01 or dubs/clip01 (default: the source's file stem)
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
        "another server or fail (default 600)",
    )
    parser.add_argument(
        "--retries", type=int, default=1, metavar="N",
        help="times a job is queued again after its server lost it by restarting (default 1)",
    )
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
    )
    try:
        return run_batch(options)
    except KeyboardInterrupt:  # before or after the jobs ran; while they run, run_batch handles it
        print("queue: interrupted", file=sys.stderr)
        return 130
