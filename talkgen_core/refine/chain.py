"""``generate ... --refine``: render at the low resolution, then refine into the final file.

The low-resolution video is a temp next to the output, removed at the end however the run ends. With a job
folder each stage keeps its own sub-folder (``generate/``, ``refine/``), so an interrupted chain resumes where
it stopped: the first stage's chunks are replayed (the same latents, so the same temp video, bit for bit) and
the second continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from .video import DEFAULT_SCALE, default_refiner_models, is_embedded_refiner, refine_video

STAGES = ("generate", "refine")
# generate() keywords of the first stage only: the refiner takes the low-resolution video's size, rate and soundtrack
FIRST_STAGE_ONLY = ("image", "images", "keyframe_times", "video", "audio", "audio_mode", "soundtrack", "fps", "size",
                    "sdedit_strength", "speaker_masks", "speech", "sink")
# the embedded refiner's own: its preset's chunk geometry and its own chain (the DiT's settings would not fit it)
EMBEDDED_OWN = ("preset", "chunk_frames", "context_frames", "strategy", "overlap_frames", "bank_size", "bank_every",
                "memory_sigma", "colour_strength")


def low_res_path(out: Path) -> Path:
    """Where the first stage writes: ``NAME.lowres.mp4`` beside ``out``."""
    return out.with_name(f"{out.stem}.lowres.mp4")


def stage_jobs(stage: str, job_dir: Optional[Union[str, Path]], job_root: Optional[Union[str, Path]]) -> dict:
    """The stage's own job sub-folder (``job_dir`` / ``job_root`` + stage name), or nothing without one."""
    if job_dir is not None:
        return {"job_dir": Path(job_dir) / stage}
    if job_root is not None:
        return {"job_root": Path(job_root) / stage}
    return {}


def _anchor(keywords: dict) -> Any:
    """The refiner's reference: the image (the first of several), or the dubbed video's first frame."""
    if keywords.get("image") is not None:
        return keywords["image"]
    if keywords.get("images"):
        return keywords["images"][0]
    from talkgen_core.video.reader import VideoReader

    with VideoReader(keywords["video"]) as reader:
        return reader.frame_at(0.0)  # [H, W, 3] uint8


def generate_refined(*, out: Union[str, Path], refine_scale: float = DEFAULT_SCALE,
                     refine_strength: Optional[float] = None, refine_condition_noise: Optional[float] = None,
                     refine_landmarks: Optional[str] = None, refiner_models: Any = None,
                     job_dir: Optional[Union[str, Path]] = None, job_root: Optional[Union[str, Path]] = None,
                     **keywords: Any):
    """:func:`~talkgen_core.pipeline.generate` with ``keywords`` into a temp, then :func:`refine_video` of it into
    ``out``; returns the second stage's GenerateResult. One speaker (or pre-encoded speech) only.

    ``refiner_models``: what refines (default: after a demo DiT, the embedded refiner where shipped; after real
    weights, the same models, training-free)."""
    from talkgen_core.pipeline import generate

    audio, speech = keywords.get("audio"), keywords.get("speech")
    if isinstance(audio, (list, tuple)) and len(audio) > 1:
        raise ValueError(f"refining takes one speaker, got {len(audio)} audio inputs; generate without refine, or "
                         "mix the voices first")
    if keywords.get("sink") is not None:
        raise ValueError("refining writes a file: give out=, not a sink (sequence parallel runs cannot refine)")
    if keywords.get("models") is None:  # the embedded demo model
        from talkgen_core.pipeline import load_demo_models

        keywords["models"] = load_demo_models(keywords.get("device") or "cpu")
    if refiner_models is None and keywords["models"].is_demo:  # a demo DiT: the demo's refiner
        refiner_models = default_refiner_models(keywords.get("device"))
    out = Path(out)
    low = low_res_path(out)
    rest = {k: v for k, v in keywords.items() if k not in FIRST_STAGE_ONLY}
    rest["models"] = refiner_models or keywords["models"]
    if is_embedded_refiner(rest["models"]):
        rest = {k: v for k, v in rest.items() if k not in EMBEDDED_OWN}
    try:
        generate(out=low, **keywords, **stage_jobs(STAGES[0], job_dir, job_root))
        return refine_video(low, _anchor(keywords), speech=speech, out=out, scale=refine_scale,
                            strength=refine_strength, condition_noise=refine_condition_noise,
                            landmarks=refine_landmarks, **rest,
                            **stage_jobs(STAGES[1], job_dir, job_root))
    finally:
        low.unlink(missing_ok=True)
