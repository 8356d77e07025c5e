"""The Streaming Sampler node: a talking video of any length, chunk by chunk, straight into an mp4."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from talkgen_core.conditioning.face_window import FACE_CROP_MODES
from talkgen_core.files.guard import inside
from talkgen_core.models.lora import applied_loras
from talkgen_core.pipeline import Models, generate
from talkgen_core.sampling.jobdir import remove_job
from talkgen_core.sampling.presets import DEFAULT_PRESET, SAMPLING_PRESETS
from talkgen_core.sampling.solvers import SOLVERS
from talkgen_core.sampling.strategies import DEFAULT_STRATEGY, STRATEGIES
from talkgen_core.sampling.streaming import Cancelled, StreamProgress
from talkgen_core.video.writer import frames_to_uint8

from . import host
from .loaders import TalkGenModel
from .native_model import is_native_model, native_dit
from .types import ANY_MODEL, ANY_VAE, CATEGORY, MODEL_PATCH, REFERENCE, SPEAKER_MASKS, SPEECH
from .vae_adapter import as_video_autoencoder

SIZES = ["auto", "480p", "720p", "demo"]
# what a named preset sets; the widgets' values are used only with preset "auto"
PRESET_SETTINGS = ("steps", "shift", "solver", "text_cfg", "audio_cfg", "chunk_frames", "context_frames")
AUTO_JOB_DIR = ("", "auto")
LOG = logging.getLogger("talkgen")


def job_root(job_dir: str) -> tuple[Path, bool]:
    """The parent of this run's job folder, and whether it is the automatic one.

    Empty or "auto": ComfyUI's temp folder, ``talkgen/jobs``. A name: that folder inside ComfyUI's output
    folder (absolute paths and ``..`` refused). Either way the run's own folder below it is named by the job
    key (inputs and settings), so the same prompt queued again resumes and other inputs never collide.
    """
    name = job_dir.strip()
    if name.lower() in AUTO_JOB_DIR:
        return host.temp_directory() / "talkgen" / "jobs", True
    return inside(host.output_directory(), name, "job_dir"), False


KEPT_TEMP_VIDEOS = 16


def new_temp_video() -> Path:
    """A fresh path in ComfyUI's temp folder for a node's VIDEO output, the older ones pruned first."""
    videos = host.temp_directory() / "talkgen" / "videos"
    if videos.is_dir():
        prune_temp_videos(videos)
    return videos / f"{uuid.uuid4().hex}.mp4"


def prune_temp_videos(folder: Path, keep: int = KEPT_TEMP_VIDEOS) -> list[Path]:
    """Delete all but the ``keep`` newest sampler videos in ``folder``; returns the deleted ones.

    The sampler's VIDEO output is a file in ComfyUI's temp folder that ComfyUI may still hold in its cache
    for the next prompt, so the newest are kept; without this the folder grows until ComfyUI restarts."""
    videos = sorted(folder.glob("*.mp4"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for old in videos[keep:]:
        old.unlink(missing_ok=True)
    return videos[keep:]


@contextmanager
def dit_for_run(model: Any, model_patch: Any = None) -> Iterator[dict[str, Any]]:
    """The DiT for one run and how it was made (``Models`` fields): ComfyUI's MODEL with its MODEL_PATCH through
    the adapter (ComfyUI places and patches it), or TalkGen Model Loader's with its LoRAs applied for the run."""
    if is_native_model(model):
        with native_dit(model, model_patch) as dit:
            yield {"dit": dit, "names": {"dit": dit.name}}
        return
    if model_patch is not None:
        raise ValueError(
            "model_patch: TalkGen Model Loader merges the InfiniteTalk adapter itself (its adapter input); "
            "disconnect model_patch, or give model ComfyUI's Load Diffusion Model instead"
        )
    module = host.load_to_compute_device(model.managed)
    with applied_loras(module, model.dit.loras):
        yield {"dit": module, "names": {"dit": model.dit.name}, "is_demo": model.dit.is_demo,
               "random_weights": model.dit.random_weights, "sampling_preset": model.dit.sampling_preset}


STRATEGY_TOOLTIPS = {
    "strategy": "how chunks make one long video: infinitetalk (official) chains chunks through a clean context tail; "
                "sliding-window denoises overlapping windows together and blends their overlaps at every step (no "
                "hand-off; euler or euler_ancestral, no APG); memory-bank is the chain plus a noised bank of earlier "
                "latents as extra context against drift",
    "overlap_frames": "sliding-window only: frames neighbouring windows share, 4k+1",
    "bank_size": "memory-bank only: bank entries at most, the first reference's latent included (0 = no bank)",
    "bank_every": "memory-bank only: a finished chunk's last latent joins the bank every this many chunks",
    "memory_sigma": "memory-bank only: noise level of the bank and the carried context while sampling",
}


def strategy_inputs() -> dict:
    """The ``strategy`` input and every strategy's parameters (defaults from the strategies' own Params)."""
    inputs: dict = {"strategy": (list(STRATEGIES), {"default": DEFAULT_STRATEGY,
                                                    "tooltip": STRATEGY_TOOLTIPS["strategy"]})}
    for cls in STRATEGIES.values():
        for param in dataclasses.fields(cls.Params):
            options = {"default": param.default, "tooltip": STRATEGY_TOOLTIPS[param.name]}
            if param.type in (int, "int"):
                inputs[param.name] = ("INT", {**options, "min": 0 if param.name == "bank_size" else 1, "max": 201,
                                              "step": 4 if param.name == "overlap_frames" else 1})
            else:
                inputs[param.name] = ("FLOAT", {**options, "min": 0.0, "max": 0.95, "step": 0.01})
    return inputs


class _NodeProgress:
    """Turns the sampler's reports into one ComfyUI progress bar over all steps of all chunks; a long step
    moves the bar too (``TICKS_PER_STEP`` ticks, from the sampler's "block" reports)."""

    TICKS_PER_STEP = 10

    def __init__(self) -> None:
        self.bar: host.Progress | None = None

    def __call__(self, report: StreamProgress) -> None:
        total = report.num_chunks * report.num_steps * self.TICKS_PER_STEP
        if self.bar is None:
            self.bar = host.Progress(total)
        preview = None
        if report.preview is not None:  # each finished chunk shows its last frame on the node
            preview = Image.fromarray(frames_to_uint8(report.preview[None])[0])
        steps = report.chunk * report.num_steps + report.step + report.step_fraction
        self.bar.set(int(steps * self.TICKS_PER_STEP), preview_image=preview)


class Sampler:
    NODE_NAME = "Sampler"
    DISPLAY_NAME = "TalkGen Streaming Sampler"
    CATEGORY = f"{CATEGORY}/sampling"
    DESCRIPTION = (
        "Generates the whole talking video in overlapping chunks (InfiniteTalk streaming): each chunk continues "
        "from the previous one's last frames, takes its reference at its own time, and is written to the video as "
        "soon as it is done, so memory stays flat for any length. The result is exactly as long as the audio. With "
        "a job folder, a cancelled or crashed run continues from the last finished chunk."
    )
    RETURN_TYPES = ("VIDEO", "INT", "FLOAT")
    RETURN_NAMES = ("video", "frames", "fps")
    OUTPUT_TOOLTIPS = (
        "the rendered video with its soundtrack (works with Save Video / Preview)",
        "number of frames rendered",
        "frame rate of the video",
    )
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (ANY_MODEL, {"tooltip": "TalkGen Model Loader (optionally through TalkGen LoRA), or "
                                                 "ComfyUI's own Wan2.1 I2V MODEL (Load Diffusion Model, GGUF and "
                                                 "LoRA loaders) with the InfiniteTalk patch on model_patch"}),
                "vae": (ANY_VAE, {"tooltip": "the Wan2.1 VAE: ComfyUI's Load VAE or TalkGen VAE Loader"}),
                "speech": (SPEECH, {"tooltip": "from TalkGen Audio Embeds; its frame rate is the video's"}),
                "reference": (REFERENCE, {"tooltip": "from TalkGen Reference (image-to-video) or TalkGen Dubbing "
                                                     "Source (video dubbing)"}),
                "size": (SIZES, {"default": "auto",
                                 "tooltip": "output size: 480p / 720p = the official aspect buckets for the reference; "
                                            "demo = about 64x64; auto = demo for the demo model, else 480p"}),
                "steps": ("INT", {"default": 40, "min": 1, "max": 200,
                                  "tooltip": "denoising steps per chunk (40 official; 4-8 with a distillation LoRA)"}),
                "shift": ("FLOAT", {"default": 7.0, "min": 0.1, "max": 30.0, "step": 0.1,
                                    "tooltip": "flow-matching shift: 7 at 480p, 11 at 720p, about 2 with some LoRAs"}),
                "solver": (list(SOLVERS), {"default": "euler", "tooltip": "ODE solver (euler = official)"}),
                "text_cfg": ("FLOAT", {"default": 5.0, "min": 1.0, "max": 20.0, "step": 0.1,
                                       "tooltip": "prompt guidance (5 official; 1 = off, saves a model pass per step)"}),
                "audio_cfg": ("FLOAT", {"default": 4.0, "min": 1.0, "max": 20.0, "step": 0.1,
                                        "tooltip": "audio guidance: lip-sync strength (3-5 best; 2 with a distillation "
                                                   "LoRA; 1 = off)"}),
                "chunk_frames": ("INT", {"default": 81, "min": 5, "max": 201, "step": 4,
                                         "tooltip": "frames per chunk, 4k+1 (81 = what the model was trained on)"}),
                "context_frames": ("INT", {"default": 9, "min": 1, "max": 33, "step": 4,
                                           "tooltip": "frames each chunk carries over from the previous one, 4k+1"}),
                "context_space": (["latent", "pixel"], {
                    "default": "latent",
                    "tooltip": "latent: carry context latents as they are (no decode/re-encode drift); pixel: the "
                               "official decode -> colour-correct -> encode round trip"}),
                "colour_correction": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                                "tooltip": "pull each chunk's colours towards the reference (Lab "
                                                           "mean/std); 0 = off"}),
                "sdedit_strength": ("FLOAT", {"default": 1.0, "min": 0.05, "max": 1.0, "step": 0.05,
                                              "tooltip": "dubbing only: below 1 starts from the source video's latents "
                                                         "noised to this level, keeping its camera path"}),
                "seed": ("INT", {"default": 42, "min": 0, "max": 2**63 - 1, "tooltip": "noise seed (per chunk: "
                                                                                        "seed and chunk index)"}),
            },
            "optional": {
                "model_patch": (MODEL_PATCH, {"tooltip": "the InfiniteTalk / MultiTalk audio patch from ComfyUI's "
                                                         "Load Model Patch, when model is ComfyUI's own MODEL"}),
                "positive": ("CONDITIONING", {"tooltip": "prompt from CLIP Text Encode with the umT5 encoder"}),
                "negative": ("CONDITIONING", {"tooltip": "negative prompt (used when text_cfg > 1)"}),
                "clip_vision_output": ("CLIP_VISION_OUTPUT", {"tooltip": "CLIP Vision Encode of the reference image "
                                                                         "(the I2V model's image tokens)"}),
                "speaker_masks": (SPEAKER_MASKS, {"tooltip": "from TalkGen Speaker Masks, for two or more speakers"}),
                "apg": ("BOOLEAN", {"default": False, "tooltip": "adaptive projected guidance: fewer artefacts at "
                                                                 "high CFG"}),
                "job_dir": ("STRING", {"default": "", "tooltip": "where finished chunks are kept so a cancelled or "
                                                                 "crashed run resumes when the same prompt is queued "
                                                                 "again. Empty (or auto) = ComfyUI's temp folder, "
                                                                 "cleared after a finished run; a name = that folder "
                                                                 "in ComfyUI's output folder, kept. Each set of "
                                                                 "inputs and settings gets its own sub-folder"}),
                "step_cache": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 5.0, "step": 0.01,
                                         "tooltip": "skip a model pass and reuse its last result while the "
                                                    "accumulated error stays below this (per guidance pass): "
                                                    "MagCache's calibrated magnitude-ratio error where the model "
                                                    "has a calibration for this schedule, else the raw change of "
                                                    "its input (TeaCache); 0 = off. Never skips a chunk's first "
                                                    "or last step. The pack's own model only"}),
                **strategy_inputs(),
                # last, so saved workflows keep their widget order
                "preset": (list(SAMPLING_PRESETS), {
                    "default": DEFAULT_PRESET,
                    "tooltip": "auto: the steps, shift, solver, guidance and frame widgets as set. A named preset "
                               "replaces all of them with what its project publishes: official (InfiniteTalk: 40 "
                               "steps, CFG 5 / 4, shift by size), lightx2v-4step (LightX2V's distilled int8 / fp8 "
                               "InfiniteTalk: 4 steps, shift 7, no CFG), flashtalk (SoulX-FlashTalk: 4 steps at "
                               "t = 1000/750/500/250 with shift 5, no CFG, 33-frame chunks, 5 context frames)"}),
                "face_crop": (list(FACE_CROP_MODES), {
                    "default": "auto",
                    "tooltip": "embedded demo model, one face in an image: auto renders a face that is moved or "
                               "smaller than a portrait in the square that frames it as one and pastes it back "
                               "(the demo model animates portraits); off renders the whole frame. Other models "
                               "always render the whole frame"}),
            },
        }

    def sample(self, model: TalkGenModel | Any, vae, speech, reference, size, steps, shift, solver, text_cfg,
               audio_cfg, chunk_frames, context_frames, context_space, colour_correction, sdedit_strength, seed,
               positive=None, negative=None, clip_vision_output=None, speaker_masks=None, apg=False, job_dir="",
               model_patch=None, strategy=DEFAULT_STRATEGY, step_cache=0.0, preset=DEFAULT_PRESET,
               face_crop="auto", **strategy_params):
        root, automatic = job_root(job_dir)
        chosen = dict(steps=steps, shift=shift, solver=solver, text_cfg=text_cfg, audio_cfg=audio_cfg,
                      chunk_frames=chunk_frames, context_frames=context_frames)
        own = getattr(getattr(model, "dit", None), "sampling_preset", None)  # the distilled demo's own preset
        if preset == DEFAULT_PRESET and own:
            preset = own
        if preset != DEFAULT_PRESET:  # the preset's values, not the widgets'
            chosen = dict.fromkeys(PRESET_SETTINGS)
        out = new_temp_video()
        clip = None if clip_vision_output is None else clip_vision_output.penultimate_hidden_states
        try:
            with dit_for_run(model, model_patch) as dit:
                models = Models(vae=as_video_autoencoder(vae), wav2vec2=None, **dit)
                result = generate(
                    speech=speech, **reference.generate_kwargs(), out=out, fps=speech.fps,
                    size=None if size == "auto" else size, preset=preset, **chosen, apg=apg,
                    context_mode=context_space, colour_strength=colour_correction,
                    sdedit_strength=sdedit_strength, seed=seed, strategy=strategy, **strategy_params,
                    text_context=None if positive is None else positive[0][0],
                    negative_context=None if negative is None else negative[0][0],
                    clip_features=clip, speaker_masks=speaker_masks, step_cache=step_cache,
                    face_crop=face_crop, job_root=root,
                    models=models, device=host.compute_device(), progress=_NodeProgress(),
                    cancel=host.cancel_requested,
                )
        except Cancelled as cancelled:
            LOG.warning("TalkGen Streaming Sampler: %s (queue the same prompt again)", cancelled)
            host.raise_if_cancelled()  # ComfyUI's own interrupt; finished chunks stay in the job folder
            raise
        if result.replayed_chunks:
            LOG.info("TalkGen Streaming Sampler: resumed, %d of %d chunks taken from the job folder %s",
                     result.replayed_chunks, result.chunks, result.job_path)
        if automatic and result.job_path is not None:
            remove_job(result.job_path)  # the video is written: its latents are only temp clutter now
        return (host.video_from_file(result.path), result.frames, result.fps)


NODES = [Sampler]
