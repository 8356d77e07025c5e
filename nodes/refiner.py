"""The Refiner node: a finished low-resolution talking video -> the same video at ``scale`` times the size."""

from __future__ import annotations

import logging
from typing import Any

from talkgen_core.pipeline import Models
from talkgen_core.refine import DEFAULT_CONDITION_NOISE, DEFAULT_SCALE, DEFAULT_STRENGTH, refine_video
from talkgen_core.refine.detectors import DETECTORS
from talkgen_core.refine.video import is_embedded_refiner
from talkgen_core.sampling.jobdir import remove_job
from talkgen_core.sampling.streaming import Cancelled
from talkgen_core.video.frames import images_to_frames
from talkgen_core.video.reader import read_images

from . import host
from .conditioning import _video_source
from .sampler import _NodeProgress, dit_for_run, job_root, new_temp_video
from .types import ANY_MODEL, ANY_VAE, CATEGORY, MODEL_PATCH, SPEECH
from .vae_adapter import as_video_autoencoder

LOG = logging.getLogger("talkgen")


class Refiner:
    NODE_NAME = "Refiner"
    DISPLAY_NAME = "TalkGen Refiner"
    CATEGORY = f"{CATEGORY}/sampling"
    DESCRIPTION = (
        "Coarse-to-fine (InfinityHuman): lifts the sampler's low-resolution video to scale times its size, chunk by "
        "chunk, with the speech still driving the mouth and the reference image as every chunk's anchor (identity "
        "and colours come back from it). With the demo's embedded refiner (TalkGen Model Loader: talkgen-demo "
        "refiner) a trained refiner redraws each chunk from the video's degraded latents and its pose (twice the "
        "size); with a DiT the video is upscaled, noised to strength and denoised again at the new size. Same frame "
        "count, frame rate and soundtrack as the input; resumable like the sampler."
    )
    RETURN_TYPES = ("IMAGE", "VIDEO")
    RETURN_NAMES = ("frames", "video")
    OUTPUT_TOOLTIPS = (
        "the refined frames (the whole video in memory: for long videos use the video output)",
        "the refined video with its soundtrack (works with Save Video / Preview and TalkGen Video Writer)",
    )
    FUNCTION = "refine"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (ANY_MODEL, {"tooltip": "the embedded refiner (TalkGen Model Loader: talkgen-demo refiner), "
                                                 "or a DiT for the training-free route: the sampler's model (TalkGen "
                                                 "Model Loader, or ComfyUI's MODEL with the InfiniteTalk patch on "
                                                 "model_patch)"}),
                "vae": (ANY_VAE, {"tooltip": "the Wan2.1 VAE: ComfyUI's Load VAE or TalkGen VAE Loader"}),
                "speech": (SPEECH, {"tooltip": "the TalkGen Audio Embeds the low-resolution video was made from"}),
                "image": ("IMAGE", {"tooltip": "the reference image (its first image): the anchor of every chunk"}),
                "scale": ("FLOAT", {"default": DEFAULT_SCALE, "min": 1.0, "max": 4.0, "step": 0.25,
                                    "tooltip": "size factor; each side is rounded to a multiple of 16"}),
                "strength": ("FLOAT", {"default": DEFAULT_STRENGTH, "min": 0.05, "max": 0.95, "step": 0.05,
                                       "tooltip": "with a DiT: noise level the refiner starts from: lower keeps "
                                                  "more of the low-resolution video, higher redraws more detail "
                                                  "(the embedded refiner uses condition_noise instead)"}),
                "seed": ("INT", {"default": 42, "min": 0, "max": 2**63 - 1, "tooltip": "noise seed (per chunk: "
                                                                                        "seed and chunk index)"}),
            },
            "optional": {
                "video": ("VIDEO", {"tooltip": "the low-resolution video (e.g. TalkGen Streaming Sampler's)"}),
                "frames": ("IMAGE", {"tooltip": "or the low-resolution video as frames, at the speech's frame rate"}),
                "condition_noise": ("FLOAT", {"default": DEFAULT_CONDITION_NOISE, "min": 0.0, "max": 0.9,
                                              "step": 0.05,
                                              "tooltip": "embedded refiner only: noise on the video's degraded "
                                                         "latents; higher trusts the low-resolution video less"}),
                "landmarks": (list(DETECTORS), {"default": "net", "tooltip": "embedded refiner only: where the "
                                                "pose comes from; " + "; ".join(f"{k}: {v}" for k, v in
                                                                                DETECTORS.items())}),
                "model_patch": (MODEL_PATCH, {"tooltip": "the InfiniteTalk patch, when model is ComfyUI's own MODEL"}),
                "clip_vision_output": ("CLIP_VISION_OUTPUT", {"tooltip": "CLIP Vision Encode of the reference image"}),
                "steps": ("INT", {"default": 0, "min": 0, "max": 200,
                                  "tooltip": "denoising steps of the full schedule, of which the refiner runs the "
                                             "last strength part; 0 = the model's preset (demo 4, official 40)"}),
                "job_dir": ("STRING", {"default": "", "tooltip": "where finished chunks are kept so a cancelled run "
                                                                 "resumes: empty (or auto) = ComfyUI's temp folder, "
                                                                 "cleared after a finished run; a name = that folder "
                                                                 "in ComfyUI's output folder, kept"}),
            },
        }

    def refine(self, model: Any, vae, speech, image, scale, strength, seed, video=None, frames=None,
               model_patch=None, clip_vision_output=None, steps=0, job_dir="", condition_noise=DEFAULT_CONDITION_NOISE,
               landmarks="net"):
        if (video is None) == (frames is None):
            raise ValueError("TalkGen Refiner: connect exactly one of video or frames")
        source = _video_source(video)[0] if video is not None else frames
        root, automatic = job_root(job_dir)
        out = new_temp_video()
        clip = None if clip_vision_output is None else clip_vision_output.penultimate_hidden_states
        try:
            with dit_for_run(model, model_patch) as dit:
                models = Models(vae=as_video_autoencoder(vae), wav2vec2=None, **dit)
                route = ({"condition_noise": condition_noise, "landmarks": landmarks} if is_embedded_refiner(models)
                         else {"strength": strength})  # each widget belongs to one route
                result = refine_video(
                    source, images_to_frames(image)[0], speech=speech, fps=speech.fps, scale=scale, seed=seed,
                    steps=steps or None, out=out, clip_features=clip, job_root=root, models=models,
                    device=host.compute_device(), progress=_NodeProgress(), cancel=host.cancel_requested, **route,
                )
        except Cancelled as cancelled:
            LOG.warning("TalkGen Refiner: %s (queue the same prompt again)", cancelled)
            host.raise_if_cancelled()
            raise
        if automatic and result.job_path is not None:
            remove_job(result.job_path)
        return (read_images(result.path), host.video_from_file(result.path))


NODES = [Refiner]
