"""``generate``: render a talking video of any length from an image (or a video to dub) and audio.

Without model options it runs the embedded demo model (shipped weights, or random ones with a warning).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import functools
import math
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import torch

from talkgen_core.commands.runtime_options import (
    add_runtime_arguments, output_for_rank, runtime_settings, start_ranks, write_report,
)
from talkgen_core.conditioning.face_window import FACE_CROP_MODES
from talkgen_core.models.attention import ATTENTION_BACKENDS
from talkgen_core.sampling.presets import SAMPLING_PRESETS
from talkgen_core.sampling.solvers import SOLVERS
from talkgen_core.sampling.strategies import STRATEGIES, all_param_names, get_strategy

STRATEGY_OPTIONS = all_param_names()  # every strategy's parameters, one option each (--overlap-frames, ...)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="reference image (image-to-video)")
    source.add_argument("--video", type=Path, help="source video to dub (sparse-frame video-to-video)")
    parser.add_argument("--audio", type=Path, required=True, help="speech of speaker 1 (any audio or video file)")
    parser.add_argument("--audio2", type=Path, action="append", default=[],
                        help="speech of a further speaker; repeat for more")
    parser.add_argument("--audio-mode", choices=("para", "add"), default="para",
                        help="several speakers: para = simultaneous, add = one after the other (default para)")
    regions = parser.add_mutually_exclusive_group()
    regions.add_argument("--masks", type=Path, nargs="+", default=None, metavar="FILE",
                         help="several speakers: one painted mask image per speaker, in speaker order (white = "
                              "the speaker's region); default: side-by-side columns, the first voice on the left")
    regions.add_argument("--boxes", default=None,
                         help="several speakers: one box per speaker in percent of the frame, 'x0,y0,x1,y1; ...'")
    parser.add_argument("--out", type=Path, required=True, help="output mp4 (audio muxed in)")
    parser.add_argument("--soundtrack", choices=("original", "normalized"), default="original",
                        help="audio of the mp4: original = the audio as given (its own rate, channels and level); "
                             "normalized = the encoder's 16 kHz mono loudness-normalised copy (default original)")
    parser.add_argument("--fps", type=float, default=25.0, help="output frame rate (default 25)")
    parser.add_argument("--size", default=None,
                        help="WIDTHxHEIGHT (multiples of 16), 480p, 720p or demo; default: the model's preset")
    parser.add_argument("--sdedit", type=float, default=1.0,
                        help="video dubbing: start noise level over the source latents, (0, 1]; 1 = off")
    parser.add_argument("--face-crop", choices=FACE_CROP_MODES, default="auto",
                        help="demo model, one face in an image: auto (default) renders a face that is moved or "
                             "smaller than a portrait in the square that frames it as one and pastes it back; off "
                             "renders the whole frame")
    add_sampling_arguments(parser)
    add_run_arguments(parser)
    from talkgen_core.commands.refine import add_chain_arguments

    add_chain_arguments(parser)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The sampling options generate and refine share (preset, steps, CFG, chunks, strategy, colour)."""
    parser.add_argument("--preset", choices=list(SAMPLING_PRESETS), default=None,
                        help="sampling settings as a project publishes them for its weights: official (40 steps, "
                             "CFG 5 / 4), lightx2v-4step (LightX2V distilled: 4 steps, shift 7, no CFG), flashtalk "
                             "(SoulX-FlashTalk: 4 steps at 1000/750/500/250, shift 5, no CFG, 33-frame chunks, 5 "
                             "context frames); --steps, --shift, --solver, the CFG and frame options override it "
                             "(default auto: the model's own preset)")
    parser.add_argument("--steps", type=int, default=None, help="solver steps per chunk (default: preset)")
    parser.add_argument("--shift", type=float, default=None, help="schedule shift (default 7 at 480p, 11 at 720p)")
    parser.add_argument("--solver", choices=sorted(SOLVERS), default=None,
                        help="ODE solver (default: the preset's, else euler)")
    parser.add_argument("--text-cfg", type=float, default=None, help="text guidance scale (1 = off)")
    parser.add_argument("--audio-cfg", type=float, default=None, help="audio guidance scale (1 = off)")
    parser.add_argument("--apg", action="store_true", help="adaptive projected guidance instead of plain CFG")
    parser.add_argument("--chunk-frames", type=int, default=None,
                        help="frames per chunk, 4n+1 (default: the preset's, else 81)")
    parser.add_argument("--context-frames", type=int, default=None,
                        help="frames carried into the next chunk, 4n+1 (default: the preset's, else 9)")
    parser.add_argument("--context-mode", choices=("latent", "pixel"), default="latent",
                        help="carry context as clean latents (default) or through pixels like the official code")
    long_video = parser.add_argument_group(
        "long-video strategy", "how chunks make one video: infinitetalk (default) chains chunks through a clean "
        "context tail; sliding-window denoises overlapping windows together and fuses their overlaps at every "
        "step; memory-bank is the chain plus a noised bank of earlier latents as extra context")
    long_video.add_argument("--strategy", choices=list(STRATEGIES), default="infinitetalk",
                            help="long-video strategy (default infinitetalk)")
    long_video.add_argument("--overlap-frames", type=int, default=None,
                            help="sliding-window: frames neighbouring windows share, 4n+1 (default 9)")
    long_video.add_argument("--bank-size", type=int, default=None,
                            help="memory-bank: bank entries at most, the first reference's latent included "
                                 "(default 3; 0 = no bank)")
    long_video.add_argument("--bank-every", type=int, default=None,
                            help="memory-bank: a finished chunk's last latent joins the bank every N chunks (default 2)")
    long_video.add_argument("--memory-sigma", type=float, default=None,
                            help="memory-bank: noise level of the bank and carried context while sampling, "
                                 "0..1 (default 0.1)")
    parser.add_argument("--colour-strength", type=float, default=1.0,
                        help="Lab colour correction towards the reference, 0..1 (default 1)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of how a run is made, shared with refine: seed, device, models, job folder, runtime."""
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: 1 for the demo model on the CPU, else torch's choice)")
    parser.add_argument("--attention", choices=ATTENTION_BACKENDS, default="sdpa",
                        help="DiT attention kernel: sdpa (PyTorch, default), flash (flash-attn) or sage "
                             "(SageAttention); flash and sage need their package and a CUDA GPU")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile each DiT block (the first chunk pays the compile time; same output within "
                             "float rounding)")
    parser.add_argument("--demo-model", choices=("base", "distilled"), default="base",
                        help="without real checkpoints: the embedded demo DiT, base (default) or its few-step "
                             "distilled student (one pass per step; its own preset unless --preset or --steps)")
    real = parser.add_argument_group(
        "real checkpoints (default: the embedded demo model)",
        "Give all three of --model, --vae and --audio-encoder to run e.g. Wan2.1-I2V-14B + InfiniteTalk, with "
        "--text-encoder and --clip-vision (below) for the prompt and the image tokens.")
    encoders = parser.add_argument_group(
        "text and image encoders (need: pip install 'talkgen[encoders]')",
        "Without --text-encoder the prompt states are zeros; without --clip-vision the DiT gets no image tokens. "
        "Both take the files ComfyUI users have (models/text_encoders, models/clip_vision).")
    encoders.add_argument("--text-encoder", type=Path, default=None, metavar="FILE",
                          help="umT5-XXL: umt5_xxl_fp16.safetensors, umt5_xxl_fp8_e4m3fn_scaled.safetensors or the "
                               "official models_t5_umt5-xxl-enc-bf16.pth (with --tokenizer)")
    encoders.add_argument("--prompt", default=None, help="what the video shows (needs --text-encoder; default empty)")
    encoders.add_argument("--negative-prompt", default=None,
                          help="what to steer away from when --text-cfg > 1 (default: InfiniteTalk's negative prompt)")
    encoders.add_argument("--tokenizer", type=Path, default=None, metavar="FILE",
                          help="umT5's spiece.model (or its folder, e.g. google/umt5-xxl) for a text-encoder file "
                               "that carries none; default: the one inside ComfyUI's umT5 files")
    encoders.add_argument("--text-encoder-device", default=None, metavar="DEVICE",
                          help="where umT5 runs (default: --device); cpu keeps its ~11 GB off the GPU (it is "
                               "released after encoding)")
    encoders.add_argument("--clip-vision", type=Path, default=None, metavar="FILE",
                          help="CLIP ViT-H vision: clip_vision_h.safetensors or the official "
                               "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth (each chunk's reference "
                               "frame -> 257 tokens)")
    real.add_argument("--model", type=Path, action="append", default=[],
                      help="DiT weight file(s): the base (single file, shards, or their index.json), then the "
                           "InfiniteTalk/MultiTalk adapter; repeat the option for each")
    real.add_argument("--vae", type=Path, help="Wan2.1 VAE (Wan2.1_VAE.pth or wan_2.1_vae.safetensors)")
    real.add_argument("--audio-encoder", type=Path, help="chinese-wav2vec2-base weights (HF layout or ComfyUI repack)")
    real.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                      help="LoRA applied unmerged (e.g. lightx2v 4-step distillation); repeatable")
    real.add_argument("--compute-dtype", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                      help="arithmetic dtype; weights keep their stored dtype (default: auto)")
    real.add_argument("--vae-dtype", choices=("auto", "bf16", "fp16", "fp32"), default="auto",
                      help="VAE weight dtype (default auto: bf16 on a GPU, fp32 on the CPU)")
    parser.add_argument("--job-dir", type=Path, default=None,
                        help="keep per-chunk latents here so an interrupted run can be resumed; a relative folder "
                             "is inside the --out file's folder, an absolute one is used as given")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --job-dir")
    add_runtime_arguments(parser)


ENCODER_OPTIONS = ("prompt", "negative_prompt", "text_encoder", "tokenizer", "text_encoder_device", "clip_vision")
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
LARGE_ALLOCATION = 1 << 20


def keep_peak_memory_flat() -> None:
    """Serve allocations of 1 MiB and more from mmap, so freed buffers go back to the OS at once.

    glibc raises its mmap threshold after a large buffer is freed, and later buffers of that size then come
    from the heap, which it rarely shrinks: a long run's many slice-sized temporaries (audio encoding, per-chunk
    decoding) would then ratchet the peak RSS up with the video length. A fixed threshold keeps the peak at
    the live working set. No-op where glibc's mallopt is not available.
    """
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_ALLOCATION)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return


def _print_progress(event) -> None:
    if event.kind != "chunk":
        return
    eta = f", ETA {event.eta_s:.0f} s" if event.eta_s is not None else ""
    note = " (restored)" if event.replayed else ""
    print(f"chunk {event.chunk + 1}/{event.num_chunks}{note}: {event.frames_written}/{event.total_frames} frames, "
          f"{event.elapsed_s:.1f} s{eta}", file=sys.stderr, flush=True)


def _lora(spec: str) -> tuple[str, float]:
    path, _, strength = spec.rpartition(":") if ":" in spec else (spec, "", "1.0")
    try:
        value = float(strength)
    except ValueError:
        raise ValueError(f"--lora {spec!r}: expected FILE or FILE:STRENGTH (e.g. lora.safetensors:0.8)") from None
    if not math.isfinite(value):
        raise ValueError(f"--lora {spec!r}: the strength must be a finite number (e.g. lora.safetensors:0.8)")
    return path, value


def _models(args: argparse.Namespace):
    """The checkpoints given on the command line, or None for the embedded demo model."""
    from talkgen_core.pipeline import load_models

    given = {"--model": bool(args.model), "--vae": args.vae is not None, "--audio-encoder": args.audio_encoder is not None}
    if not any(given.values()):
        if args.lora:
            raise ValueError("--lora needs real checkpoints (--model, --vae, --audio-encoder)")
        if args.demo_model == "base":
            return None
        from talkgen_core.pipeline import load_demo_models

        return load_demo_models("cpu" if args.offload_blocks else args.device, variant=args.demo_model)
    if args.demo_model != "base":
        raise ValueError("--demo-model chooses the embedded demo DiT; leave it out with --model, --vae, --audio-encoder")
    missing = [name for name, present in given.items() if not present]
    if missing:
        raise ValueError(f"real checkpoints need --model, --vae and --audio-encoder; missing {', '.join(missing)}")
    dtypes = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    # block swap places the DiT itself: load it in CPU memory, so the whole model is never on the device
    return load_models(args.model, args.vae, args.audio_encoder, device="cpu" if args.offload_blocks else args.device,
                       compute_dtype=dtypes[args.compute_dtype], vae_dtype=args.vae_dtype)


def _dit_speed(args: argparse.Namespace, models):
    """--attention and --compile applied to the DiT; the demo model is loaded here when either is asked for."""
    if args.attention == "sdpa" and not args.compile:
        return models
    if models is None:
        from talkgen_core.pipeline import load_demo_models

        models = load_demo_models("cpu" if args.offload_blocks else args.device, variant=args.demo_model)
    models.dit.set_attention_backend(args.attention)
    models.dit.set_compile(args.compile)
    return models


def _speaker_regions(args: argparse.Namespace):
    """--masks / --boxes as SpeakerMasks; None leaves generate() its side-by-side default."""
    from talkgen_core.conditioning.speaker_masks import read_mask_files, speaker_masks

    if args.masks is None and args.boxes is None:
        return None
    speakers = 1 + len(args.audio2)
    flag = "--masks" if args.masks is not None else "--boxes"
    given = len(args.masks) if args.masks is not None else len([b for b in args.boxes.split(";") if b.strip()])
    if given != speakers:
        raise ValueError(f"{flag} gives {given} region(s) for {speakers} speaker(s) (--audio plus each --audio2); "
                         "give one per speaker, in the same order")
    painted = read_mask_files(args.masks) if args.masks is not None else None
    try:
        return speaker_masks(speakers, masks=painted, boxes=args.boxes or "")
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


@contextlib.contextmanager
def _ctrl_c_cancels() -> Iterator[threading.Event]:
    """The first Ctrl-C asks the run to stop at its next solver step, so it ends cleanly and can say what was
    kept; a second one interrupts at once. Outside the main thread Ctrl-C keeps its default."""
    requested = threading.Event()

    def on_interrupt(signum, frame) -> None:
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        print("stopping at the next step (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    try:
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:
        yield requested
        return
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_strategy_options(args: argparse.Namespace) -> None:
    """Refuse an option of another strategy than --strategy (it would be ignored)."""
    own = get_strategy(args.strategy).param_names()
    stray = [name for name in STRATEGY_OPTIONS if getattr(args, name) is not None and name not in own]
    if stray:
        flags = ", ".join("--" + name.replace("_", "-") for name in stray)
        raise ValueError(f"{flags} belong(s) to another strategy than --strategy {args.strategy}; remove it or "
                         "choose that strategy")


def _job_folder(args: argparse.Namespace) -> Path | None:
    """--job-dir as used: relative ones inside the output's folder, absolute ones as typed."""
    from talkgen_core.files.guard import inside

    if args.job_dir is None or args.job_dir.is_absolute():
        return args.job_dir
    return inside(args.out.parent, args.job_dir, "--job-dir")


def _kept(args: argparse.Namespace, job_dir: Path | None) -> str:
    """What an interrupted run leaves, for its last message."""
    if job_dir is None:
        return f"nothing was written to {args.out} (give --job-dir to keep finished chunks next time)"
    again = "run the same command again" + ("" if args.resume else " with --resume")
    return f"nothing was written to {args.out}; the finished chunks are kept in {job_dir}: {again} to continue"


def run_keywords(args: argparse.Namespace) -> dict:
    """generate() keywords of the options :func:`add_sampling_arguments` and :func:`add_run_arguments` define
    (the job folder and the models come from :func:`prepare_run`)."""
    return dict(
        preset=args.preset, steps=args.steps, shift=args.shift, solver=args.solver, text_cfg=args.text_cfg,
        audio_cfg=args.audio_cfg, apg=args.apg, chunk_frames=args.chunk_frames, context_frames=args.context_frames,
        context_mode=args.context_mode, colour_strength=args.colour_strength, seed=args.seed, device=args.device,
        threads=args.threads, resume=args.resume, progress=_print_progress, strategy=args.strategy,
        **{name: getattr(args, name) for name in STRATEGY_OPTIONS}, **runtime_settings(args),
        **{name: getattr(args, name) for name in ENCODER_OPTIONS},
    )  # fmt: skip


@dataclass
class PreparedRun:
    """What a generate-like command has ready once its options are checked."""

    rank: int
    job_dir: Optional[Path]
    models: Any  # pipeline.Models, or None for the embedded demo model
    loras: list[tuple[str, float]]
    keywords: dict  # generate() keywords the command's own checks produced (e.g. speaker masks)


def prepare_run(args: argparse.Namespace, check: Callable[[], dict]) -> Union[PreparedRun, int]:
    """The run of a generate-like command after ``check()`` (its own checks of the inputs, returning the
    generate() keywords they produce), or the exit status 2 with the error printed."""
    from talkgen_core.models.checkpoint import CheckpointError
    from talkgen_core.models.lora import LoraError

    if args.resume and args.job_dir is None:
        print("error: --resume needs --job-dir (the folder of the run to continue)", file=sys.stderr)
        return 2
    try:
        rank = start_ranks(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        keywords = check()
        _check_strategy_options(args)
        loras = [_lora(spec) for spec in args.lora]
        return PreparedRun(rank, _job_folder(args), _dit_speed(args, _models(args)), loras, keywords)
    except (ValueError, FileNotFoundError, CheckpointError, LoraError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def execute(args: argparse.Namespace, prepared: PreparedRun, render: Callable[..., Any]) -> int:
    """Run ``render(models=..., job_dir=..., cancel=..., **keywords, **output)`` (a generate()-like call returning
    a GenerateResult) with the LoRAs applied, Ctrl-C as cancel and the CLI's messages; returns the exit status."""
    from talkgen_core.encoders.errors import EncoderPackageMissing
    from talkgen_core.files.lock import FolderInUse
    from talkgen_core.models.lora import LoraError, applied_loras
    from talkgen_core.sampling.streaming import Cancelled

    rank, job_dir, models = prepared.rank, prepared.job_dir, prepared.models
    keep_peak_memory_flat()
    plain = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *rest, **kw: f"warning: {message}\n"  # no source lines
    try:
        with _ctrl_c_cancels() as cancel, \
                applied_loras(models.dit, prepared.loras) if models is not None else contextlib.nullcontext():
            result = render(models=models, job_dir=job_dir, cancel=cancel.is_set, **prepared.keywords,
                            **output_for_rank(args, rank))
    except Cancelled as exc:
        print(f"cancelled after {exc.finished_chunks} of {exc.num_chunks} chunks: {_kept(args, job_dir)}",
              file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"interrupted: {_kept(args, job_dir)}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, FolderInUse, LoraError, EncoderPackageMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = plain
    if rank:  # sequence parallel: the other ranks computed with rank 0 and write nothing
        return 0
    print(f"wrote {result.path}: {result.frames} frames at {result.fps:g} fps ({result.width}x{result.height}), "
          f"{result.chunks} chunks, {result.seconds:.1f} s")
    write_report(args, result)
    return 0


def run(args: argparse.Namespace) -> int:
    from talkgen_core.commands.refine import chained, check_chain_arguments
    from talkgen_core.files.guard import refuse_overwriting_inputs
    from talkgen_core.pipeline import generate
    from talkgen_core.validation import check_generate_call

    def check() -> dict:
        # the settings are generate()'s keywords under their option names; only --sdedit is spelled differently
        check_generate_call({**vars(args), "sdedit_strength": args.sdedit}, image=args.image, video=args.video)
        check_chain_arguments(args)
        refuse_overwriting_inputs(args.out, [("--image", args.image), ("--video", args.video), ("--audio", args.audio),
                                             *(("--audio2", a) for a in args.audio2)], flag="--out")
        return {"speaker_masks": _speaker_regions(args)}

    prepared = prepare_run(args, check)
    if isinstance(prepared, int):
        return prepared
    render = functools.partial(
        chained(args, generate), image=args.image, video=args.video, audio=[args.audio, *args.audio2],
        audio_mode=args.audio_mode, soundtrack=args.soundtrack, fps=args.fps, size=args.size,
        sdedit_strength=args.sdedit, face_crop=args.face_crop, **run_keywords(args))
    return execute(args, prepared, render)
