"""Named sampling presets: the settings each InfiniteTalk project publishes for its weights.

``auto`` leaves everything to the model kind (the demo preset, or the official one for real checkpoints); the
others fix steps, shift, solver, guidance, chunk and context frames. Explicit settings override a preset's.
Sources, and how each maps onto talkgen's sampler: ``docs/distilled_checkpoints.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional

DEFAULT_CHUNK_FRAMES = 81  # what InfiniteTalk was trained on
DEFAULT_CONTEXT_FRAMES = 9  # InfiniteTalk's --motion_frame
DEFAULT_SOLVER = "euler"


@dataclass(frozen=True)
class SamplingPreset:
    """None for steps / shift / guidance: the model kind's preset decides (shift None there: by resolution)."""

    name: str
    steps: Optional[int] = None
    shift: Optional[float] = None
    text_cfg: Optional[float] = None  # 1 = no text guidance pass
    audio_cfg: Optional[float] = None  # 1 = no audio guidance pass
    solver: str = DEFAULT_SOLVER
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    context_frames: int = DEFAULT_CONTEXT_FRAMES
    timesteps: Optional[tuple[float, ...]] = None  # model times before the shift, one per step; None = linspace
    source: str = ""

    def override(self, **given) -> SamplingPreset:
        """This preset with the given (not None) settings in place of its own. A step count other than the
        explicit grid's drops that grid for the official linspace one, as FlashTalk's own code does."""
        chosen = {k: v for k, v in given.items() if v is not None}
        unknown = sorted(set(chosen) - {f.name for f in fields(self)} - {"name", "source"})
        if unknown:
            raise TypeError(f"not preset settings: {', '.join(unknown)}")
        result = replace(self, **chosen)
        if result.timesteps is not None and result.steps != len(result.timesteps):
            result = replace(result, timesteps=None)
        return result


SAMPLING_PRESETS: dict[str, SamplingPreset] = {
    "auto": SamplingPreset("auto", source="the model kind's preset (demo, or official for real checkpoints)"),
    "official": SamplingPreset(
        "official", steps=40, shift=None, text_cfg=5.0, audio_cfg=4.0,
        source="MeiGen-AI/InfiniteTalk README: 40 steps, text CFG 5, audio CFG 4, motion frames 9, 81-frame "
               "chunks; shift 7 at 480p, 11 at 720p",
    ),
    "lightx2v-4step": SamplingPreset(
        "lightx2v-4step", steps=4, shift=7.0, text_cfg=1.0, audio_cfg=1.0,
        source="ModelTC/LightX2V configs/infinitetalk/*_distilled.json: infer_steps 4, sample_shift 7, "
               "enable_cfg false, target_video_length 81, motion_frame 9",
    ),
    "flashtalk": SamplingPreset(
        "flashtalk", steps=4, shift=5.0, text_cfg=1.0, audio_cfg=1.0, solver="euler_ancestral", chunk_frames=33,
        context_frames=5, timesteps=(1000.0, 750.0, 500.0, 250.0),
        source="Soul-AILab/SoulX-FlashTalk flash_talk/configs/infer_params.yaml and its pipeline: frame_num 33, "
               "motion_frames_num 5, 4 steps at 1000/750/500/250 warped by sample_shift 5, no CFG, each step "
               "re-noises the clean estimate with fresh noise",
    ),
    "demo-distilled": SamplingPreset(
        "demo-distilled", steps=3, shift=1.0, text_cfg=1.0, audio_cfg=1.0, timesteps=(1000.0, 750.0, 500.0),
        source="talkgen's distilled demo student (talkgen_core/train/distill.py): the grid it was trained on, "
               "one pass per step (guidance folded in)",
    ),
    "demo-refiner": SamplingPreset(
        "demo-refiner", steps=4, shift=7.0, text_cfg=1.0, audio_cfg=1.0, chunk_frames=33, context_frames=5,
        source="talkgen's embedded refiner (talkgen_core/train/refiner.py): the chunk it was trained on, the demo's "
               "4 steps at shift 7, one pass per step (the low-resolution video already carries the mouth)",
    ),
}  # fmt: skip
DEFAULT_PRESET = "auto"


def get_sampling_preset(name: Optional[str]) -> SamplingPreset:
    """A preset by name (None: ``auto``); an unknown name raises an error listing the valid ones."""
    try:
        return SAMPLING_PRESETS[DEFAULT_PRESET if name is None else name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(SAMPLING_PRESETS)}") from None
