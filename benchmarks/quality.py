"""Long-video strategies compared (lip sync, drift, chunk seams), and the demo model's own measures of what it draws.

A held-out synthetic identity (never seen in training) speaks a held-out speech-like track for two minutes;
the embedded demo model renders it with each strategy, and ``talkgen_core.metrics`` measures the result:

* ``naive chaining``: image-to-video per chunk, the previous chunk's last frame becomes the next reference
  (and its only context frame); nothing ties later chunks to the original image.
* ``first+last rigid``: each chunk starts from the previous chunk's last frame and its last latent frame is
  pinned to the reference image (keyframe interpolation).
* ``infinitetalk latent``: 9 context frames carried as clean latents + the reference in every chunk (ours, default).
* ``infinitetalk pixel``: the same with the official decode -> encode round trip for the context.
* ``sliding-window``: overlapping windows fused at every step, streamed as a wavefront (default overlap 9).
* ``memory-bank``: the InfiniteTalk chain plus a noised bank of earlier latents (defaults: 3 entries, one new
  every 2 chunks, sigma_m 0.1), with the shipped weights, which were trained without a bank.

Colour correction is off in every row so that it hides no drift. Targets for ours: best lag within +-1 frame,
correlation >= 0.6, colour drift slope near zero and clearly below naive chaining, seam ratio <= 1.5 (<= 1.3
for sliding-window, which has no hand-off). Each strategy renders in a process of its own, so its peak RSS is
its own (frames are kept on disk for the measures, not in memory); ``s_per_video_s`` is render seconds per
second of video.

Then the demo model's own measures (``--measure NAME``, repeatable; default: the strategies and all of these), each
at the demo size (``--size`` pixels high) through ``pipeline.generate`` with its demo preset, as ``make demo``
renders, and measured at the renderer's ground-truth boxes (``talkgen_core.metrics.feature_boxes``):

* ``eye-detail``: luminance detail (RMS of the 3 x 3 high-pass) over the eyes and brows of the example face
  (seed 7; its eye mask eroded by a pixel, so the fringe's edge above the brows is not counted), as a ratio to
  the reference's: the demo VAE's encode -> decode of the reference, frame 0 and the mean over the long video
  (target >= 0.6); and the reconstruction's ratio over the whole eye box.
* ``moved-face``: the example face at 75 % moved right and up (``MOVED_PLACEMENT``) speaking held-out speech
  for ``--sync-seconds``: best lag and r (best correlation within +-1 frame) of the mouth-interior count inside
  the box around its true mouth (targets: lag within +-1, r >= 0.5), r inside the box where a centred
  portrait's mouth would be, for contrast, and r on the part of the true box outside the portrait's; rendered as
  ``generate`` renders it (face framing on, ``face_crop`` auto) and, as ``whole_frame_*``, with ``face_crop`` off.
* ``head-motion``: spread (RMS distance from the mean, px) of the hair-colour centroid over the long video
  (``--long-seconds``, 2 minutes) of the example face, in windows as long as a training clip, against the
  same on ``--training-clips`` synthetic training clips (target ratio >= 0.5).
* ``silent-mouth``: in the long video's pauses, the closed mouth's lip pixels as a share of the reference's.
* ``two-speakers``: held-out faces 8 and 9 side by side (``example_inputs/two_people.png``'s layout, the default
  column masks), two held-out voices in turns without overlap (each mouth r >= 0.5 with its own voice,
  <= 0.15 with the other's) and both at once (own r >= 0.4).

* ``refiner``: the long video of the example face refined by the embedded refiner to twice the size, against a
  bicubic upscale of the same low-resolution video, both at the refined size: eye detail (target >= 0.5 of the
  reference's), face error to the reference over the face without its mouth box (target below bicubic's), its
  slope over the video (identity drift) and the face colour drift (targets: no steeper than bicubic's), lip sync at
  the mouth box (target: lag within +-1, r >= 0.9 of the low-resolution video's), and seconds per second of video
  of each stage.

``--quick`` shortens everything (one strategy, seconds of video) for a smoke test. ``--json`` writes
``{"strategies": [rows], "measures": {name: {number: value}}}`` (the parts that ran).

    python benchmarks/quality.py [--seconds 120] [--steps 4] [--weights-dir DIR] [--strategy NAME ...] [--json out.json]
    python benchmarks/quality.py --seconds 600 --strategy "infinitetalk latent" --strategy sliding-window \
        --strategy memory-bank --measure strategies   # the 10-minute comparison
    python benchmarks/quality.py --measure eye-detail --measure two-speakers --weights-dir new_weights/
    python benchmarks/quality.py --quick --json quick.json   # everything in seconds
    python benchmarks/quality.py --measure head-motion --audio-cfg 4   # every render at another audio guidance
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor

HELD_OUT_IDENTITY = 11  # below FIRST_TRAINING_IDENTITY_SEED, and not one of the example_inputs faces
SPEECH_SEED = 424242
FPS = 25.0
STRATEGIES = ("naive chaining", "first+last rigid", "infinitetalk latent", "infinitetalk pixel", "sliding-window",
              "memory-bank")


class TapSink:
    """Spills frames (float32, exactly as rendered) to a file, so they do not count in the render's memory, and
    remembers the last one (the chained reference)."""

    def __init__(self, path: Path) -> None:
        self.path, self.handle = path, open(path, "wb")
        self.last: torch.Tensor | None = None
        self.shape: tuple[int, ...] = ()
        self.count = 0

    def write(self, frames: torch.Tensor) -> None:  # [T, 3, H, W] in [-1, 1]
        self.handle.write(frames.detach().float().contiguous().numpy().tobytes())
        self.shape, self.count = tuple(frames.shape[1:]), self.count + frames.shape[0]
        self.last = frames[-1].clone()

    def close(self) -> None:
        self.handle.close()

    def frames(self) -> torch.Tensor:
        """[T, 3, H, W] in [-1, 1]"""
        return torch.from_numpy(np.fromfile(self.path, dtype=np.float32).reshape(self.count, *self.shape))


class ChainedReference:
    """Naive chaining: the reference of chunk k > 0 is the last frame written so far."""

    def __init__(self, image: torch.Tensor, sink: TapSink) -> None:
        self.image, self.sink, self.size = image, sink, tuple(image.shape[-2:])

    def reference_for(self, chunk, fps: float) -> torch.Tensor:
        return self.image if chunk.index == 0 or self.sink.last is None else self.sink.last

    def colour_reference(self) -> torch.Tensor:
        return self.image

    def source_frames_for(self, chunk, fps: float):
        return None


def render(models, speech, image, strategy: str, steps: int, seed: int, sink: TapSink,
           audio_cfg: float | None) -> tuple[list[int], float, float]:
    """Render into ``sink`` (``audio_cfg`` None: the demo preset's); the chunk boundaries, the seconds it took and
    the peak RSS (MiB) so far."""
    from talkgen_core.pipeline import DEMO_PRESET
    from talkgen_core.sampling.guidance import GuidanceConfig
    from talkgen_core.sampling.references import StillReference
    from talkgen_core.sampling.strategies import get_strategy
    from talkgen_core.sampling.streaming import StreamConditioning, StreamingSampler, StreamSettings

    context_frames = 1 if strategy in ("naive chaining", "first+last rigid") else 9
    own = strategy if strategy in ("sliding-window", "memory-bank") else "infinitetalk"
    audio_scale = DEMO_PRESET.audio_cfg if audio_cfg is None else audio_cfg
    settings = StreamSettings(
        steps=steps, seed=seed, colour_strength=0.0, guidance=GuidanceConfig(text_scale=1.0, audio_scale=audio_scale),
        context_mode="pixel" if strategy in ("naive chaining", "first+last rigid", "infinitetalk pixel") else "latent",
        end_keyframe=strategy == "first+last rigid", strategy=own,
    )
    plan = get_strategy(own)(settings.strategy_params).plan(speech.frames, 81, context_frames)
    size = tuple(image.shape[-2:])
    references = ChainedReference(image, sink) if strategy == "naive chaining" else StillReference(image, size)
    conditioning = StreamConditioning(audio_features=list(speech.features),
                                      context=torch.zeros(1, 1, models.dit.config.text_dim))
    sampler = StreamingSampler(models.dit, models.vae, plan, FPS, references, conditioning, settings)
    started = time.perf_counter()
    sampler.run(sink)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    boundaries = [chunk.output_start for chunk in plan.chunks()[1:]]
    return boundaries, seconds, peak_mib


def measure(frames, boundaries, image, audio, seconds, peak_mib) -> dict:
    from talkgen_core.metrics import drift, lip_sync, seam_ratio

    sync = lip_sync(frames, audio, 16000, FPS)
    moved = drift(frames, image, FPS)
    seams = seam_ratio(frames, boundaries)
    return {
        "best_lag": sync.best_lag, "correlation": round(sync.peak_correlation, 3),
        "sync_confidence": round(sync.confidence, 3),
        "face_colour_slope_per_min": round(60 * moved.face_colour_slope, 3),
        "background_colour_slope_per_min": round(60 * moved.background_colour_slope, 3),
        "shape_error_slope_per_min": round(60 * moved.shape_error_slope, 4),
        "seam_ratio": round(seams.ratio, 3), "render_s": round(seconds, 1),
        "s_per_video_s": round(seconds / (frames.shape[0] / FPS), 3), "peak_rss_mib": round(peak_mib),
    }  # fmt: skip


# -- the demo model's own measures ------------------------------------------------------------------------------
# Each measure is a function of frames and ground truth (the renderer's boxes and colours), so it can be checked
# on the renderer's own clips; ``demo_measures`` renders the videos with the model and calls them.

MEASURES = ("strategies", "eye-detail", "moved-face", "head-motion", "silent-mouth", "two-speakers", "refiner")
MOVED_PLACEMENT = (0.2, -0.15, 0.75)  # Placement(cx, cy, scale): the example face at 75 %, right of and above centre
PAIR_IDENTITIES = (8, 9)  # example_inputs/two_people.png
SECOND_SPEECH_SEED = 434343  # the second held-out voice (training speech seeds are the clip indices, < 10^6)
SAMPLE_RATE = 16000
TURN_SECONDS = (1.0, 3.0)  # turn lengths of the turn-taking schedule
TURN_RAMP_S = 0.03
TRAINING_CLIP_FRAMES, QUICK_CLIP_FRAMES = 125, 50  # talkgen_core.train.config's clip_frames; head-motion's window
TARGETS = {
    "eye_detail.vae_ratio": ">= 0.6", "eye_detail.frame0_ratio": ">= 0.6", "eye_detail.video_mean_ratio": ">= 0.6",
    "moved_face.best_lag": "-1..1", "moved_face.r": ">= 0.5", "head_motion.ratio": ">= 0.5",
    "two_speakers.turns_own_r_left": ">= 0.5", "two_speakers.turns_own_r_right": ">= 0.5",
    "two_speakers.turns_other_r_left": "<= 0.15", "two_speakers.turns_other_r_right": "<= 0.15",
    "two_speakers.both_own_r_left": ">= 0.4", "two_speakers.both_own_r_right": ">= 0.4",
    "refiner.eye_detail_refined": ">= 0.5", "refiner.face_error_refined": "< face_error_bicubic",
    "refiner.best_lag_refined": "-1..1", "refiner.r_refined": ">= 0.9 r_low",
    "refiner.identity_slope_per_min_refined": "|x| <= bicubic's",
    "refiner.colour_slope_per_min_refined": "|x| <= bicubic's",
}  # fmt: skip


def unit_float(image: Tensor) -> Tensor:
    """uint8 [3, H, W] -> float [3, H, W] in [-1, 1] (the core's pixels)."""
    return image.float() / 127.5 - 1.0


def render_demo(models, image: Tensor, audio: Tensor | list[Tensor], seed: int,
                audio_cfg: float | None = None, face_crop: str = "auto") -> Tensor:
    """``generate`` with the demo preset (``audio_cfg`` None: the preset's) and ``face_crop`` at the image's own
    size (one voice [S], or one per speaker, "para") -> frames [T, 3, H, W] in [-1, 1]."""
    from talkgen_core.pipeline import generate

    height, width = image.shape[-2:]
    with torch.no_grad():
        result = generate(audio=audio, image=image, models=models, size=f"{width}x{height}", seed=seed,
                          audio_cfg=audio_cfg, face_crop=face_crop)
    return result.images.permute(0, 3, 1, 2) * 2.0 - 1.0


def vae_round_trip(vae, image: Tensor) -> Tensor:
    """One picture [3, H, W] in [-1, 1] through the VAE's encode -> decode: [3, H, W]."""
    with torch.no_grad():
        return vae.decode(vae.encode(image[None, :, None]))[0, :, 0].clamp(-1.0, 1.0)


def measure_eye_detail(reference: Tensor, boxes, reconstruction: Tensor, frames: Tensor) -> dict:
    """Detail at the eyes (``boxes``: the face's ``FeatureBoxes``) of the VAE's reconstruction [3, H, W] and of
    generated frames [T, 3, H, W], as ratios to the reference's [3, H, W]: over the eyes' own pixels, and for the
    reconstruction also over the whole eye box (where an edge beside the eyes, such as a fringe, counts too)."""
    from talkgen_core.metrics import detail_ratio

    video = detail_ratio(frames, reference, boxes.eye_pixels)
    ratio = lambda image, region: round(float(detail_ratio(image[None], reference, region)[0]), 3)  # noqa: E731
    return {"vae_ratio": ratio(reconstruction, boxes.eye_pixels), "frame0_ratio": round(float(video[0]), 3),
            "video_mean_ratio": round(float(video.mean()), 3),
            "vae_box_ratio": ratio(reconstruction, boxes.eyes.mask())}


def measure_moved_face(frames: Tensor, audio: Tensor, true_mouth, portrait_mouth) -> dict:
    """Lip sync of frames [T, 3, H, W] with audio [S] at the face's true mouth box, at a centred portrait's mouth
    box, and on the part of the true box outside the portrait's (the boxes overlap for a small move, so a mouth
    drawn at the portrait's place reaches into the true box; only a mouth at its true place moves there)."""
    from talkgen_core.metrics import correlation_near, lip_sync

    true, portrait = true_mouth.mask(), portrait_mouth.mask()
    at_true = lip_sync(frames, audio, SAMPLE_RATE, FPS, region=true)
    at_portrait = lip_sync(frames, audio, SAMPLE_RATE, FPS, region=portrait)
    true_only = lip_sync(frames, audio, SAMPLE_RATE, FPS, region=true & ~portrait)
    return {"best_lag": at_true.best_lag, "r": round(correlation_near(at_true), 3),
            "portrait_r": round(correlation_near(at_portrait), 3), "true_only_r": round(correlation_near(true_only), 3)}


def hair_centroids(frames: Tensor, reference: Tensor, hair_rgb, margin: int = 6) -> Tensor:
    """Hair-colour centroids [T, 2] of frames [T, 3, H, W], counting only pixels within ``margin`` px of the
    box around the reference's hair (so nothing far from the head can pull them)."""
    from talkgen_core.metrics import colour_centroids, colour_closeness, mask_box
    from talkgen_core.metrics.frames import to_unit_rgb
    from talkgen_core.metrics.head_motion import HAIR_DELTA_E_TOLERANCE

    hair = colour_closeness(to_unit_rgb(reference), hair_rgb, HAIR_DELTA_E_TOLERANCE)
    region = mask_box(hair, threshold=0.0, what="the reference's hair").grown(margin).mask()
    return colour_centroids(frames, hair_rgb, region)


def hair_stands_out(identity) -> bool:
    """Whether no other colour of the identity (skin, shirt, background) is within twice the hair tolerance of
    its hair colour, so that the hair centroid counts hair only."""
    from talkgen_core.metrics import delta_e76, srgb_to_lab
    from talkgen_core.metrics.head_motion import HAIR_DELTA_E_TOLERANCE

    lab = lambda rgb: srgb_to_lab(torch.tensor(rgb), channel_dim=0)  # noqa: E731
    others = (identity.skin_rgb, identity.shirt_rgb, identity.background_a_rgb, identity.background_b_rgb)
    nearest = min(float(delta_e76(lab(identity.hair_rgb), lab(other), 0)) for other in others)
    return nearest > 2 * HAIR_DELTA_E_TOLERANCE


def training_head_motion(clips: int, frames: int, size: int) -> float:
    """Mean hair-centroid spread (px) of the first ``clips`` synthetic training clips (``make_clip(i)``, ``frames``
    long) whose hair colour stands out from the rest of the picture."""
    from talkgen_core.metrics import centroid_spread
    from talkgen_core.synth import make_clip, render_reference, sample_identity, training_identity_seed

    spreads, index = [], 0
    while len(spreads) < clips:
        if hair_stands_out(sample_identity(training_identity_seed(index))):
            clip = make_clip(index, num_frames=frames, size=size)
            reference = render_reference(clip.identity, size, clip.placement)
            spreads.append(centroid_spread(hair_centroids(clip.frames, reference, clip.identity.hair_rgb)))
        index += 1
    return sum(spreads) / len(spreads)


def measure_head_motion(frames: Tensor, reference: Tensor, hair_rgb, training_spread: float, window: int) -> dict:
    """Hair-centroid spread of frames [T, 3, H, W]: whole and in ``window``-frame windows, against training's."""
    from talkgen_core.metrics import centroid_spread, windowed_spread

    centroids = hair_centroids(frames, reference, hair_rgb)
    windowed = windowed_spread(centroids, window)
    return {"video_spread_px": round(centroid_spread(centroids), 3), "windowed_spread_px": round(windowed, 3),
            "training_spread_px": round(training_spread, 3),
            "ratio": round(windowed / training_spread, 3) if training_spread > 0 else float("nan")}


def measure_silent_mouth(frames: Tensor, reference: Tensor, audio: Tensor, identity, closed_mouth) -> dict:
    """Lip pixels of the closed mouth in the pauses of ``audio`` [S], against the reference's."""
    from talkgen_core.metrics import silent_mouth
    from talkgen_core.synth.palette import LIP_LINE_DARKEN

    line = tuple(c * LIP_LINE_DARKEN for c in identity.lip_rgb)
    result = silent_mouth(frames, reference, audio, SAMPLE_RATE, FPS, (identity.lip_rgb, line), identity.skin_rgb,
                          closed_mouth)
    return {"share": round(result.share, 3), "silent_lip_px": round(result.silent_lip_pixels, 2),
            "speaking_lip_px": round(result.speaking_lip_pixels, 2),
            "reference_lip_px": round(result.reference_lip_pixels, 2), "silent_frames": result.silent_frames}


def turn_taking(voices: Tensor, seed: int) -> Tensor:
    """Two voices [2, S] -> the same voices speaking in alternating turns of ``TURN_SECONDS``, never at once,
    with short ramps at the turns: [2, S]."""
    rng = np.random.default_rng([seed, 0x7A1C])
    gates = np.zeros(voices.shape)
    start, speaker = 0, 0
    while start < voices.shape[1]:
        length = int(rng.uniform(*TURN_SECONDS) * SAMPLE_RATE)
        gates[speaker, start : start + length] = 1.0
        start, speaker = start + length, 1 - speaker
    ramp = max(int(TURN_RAMP_S * SAMPLE_RATE), 1)
    smooth = np.stack([np.convolve(g, np.ones(ramp) / ramp, mode="same") for g in gates])
    return voices * torch.from_numpy(smooth).float()


def measure_two_speakers(frames: Tensor, voices: Tensor, mouths: list) -> dict:
    """Each mouth (left, right) of frames [T, 3, H, W] against its own and the other's voice [2, S]."""
    from talkgen_core.metrics import speaker_sync

    r = speaker_sync(frames, voices, torch.stack([box.mask() for box in mouths]), SAMPLE_RATE, FPS)
    return {"own_r_left": round(float(r[0, 0]), 3), "own_r_right": round(float(r[1, 1]), 3),
            "other_r_left": round(float(r[0, 1]), 3), "other_r_right": round(float(r[1, 0]), 3)}


def face_pixels(identity, size: int, mouth) -> Tensor:
    """[H, W] bool: the neutral face's skin at ``size`` pixels, without its ``mouth`` box (a mouth that moves
    differs from the closed reference however well it is drawn)."""
    from talkgen_core.synth.render import neutral_track, render_scene

    skin = render_scene([neutral_track(identity)], size, size).face_mask[0, 0] > 0.5
    return skin & ~mouth.mask()


def measure_refiner(low: Tensor, refined: Tensor, reference: Tensor, eye_pixels: Tensor, face: Tensor,
                    mouths: tuple, audio: Tensor, seconds: dict) -> dict:
    """The refiner at the refined size: low-resolution frames [T, 3, h, w], refined [T, 3, H, W] and the reference
    [3, H, W] (in [-1, 1]) against a bicubic upscale of the low-resolution frames: eye detail (mean ratio to the
    reference's), face error (mean |difference| to the reference in grey levels over ``face`` pixels) and its slope
    (identity drift), face colour drift, lip sync at the mouth boxes (``mouths``: low and high resolution), and
    seconds per second of video of each stage (``seconds``: {"low": s, "refine": s})."""
    from talkgen_core.metrics import correlation_near, detail_ratio, drift, lip_sync
    from talkgen_core.metrics.drift import slope_per_second

    bicubic = F.interpolate(low, size=refined.shape[-2:], mode="bicubic", align_corners=False).clamp(-1.0, 1.0)
    result: dict = {}
    for name, frames in (("refined", refined), ("bicubic", bicubic)):
        error = (frames - reference).abs()[:, :, face].mean(dim=(1, 2)) * 127.5  # [T] grey levels
        result[f"eye_detail_{name}"] = round(float(detail_ratio(frames, reference, eye_pixels).mean()), 3)
        result[f"face_error_{name}"] = round(float(error.mean()), 2)
        result[f"identity_slope_per_min_{name}"] = round(60 * slope_per_second(error, FPS), 3)
        result[f"colour_slope_per_min_{name}"] = round(60 * drift(frames, reference, FPS).face_colour_slope, 3)
    for name, frames, mouth in (("low", low, mouths[0]), ("refined", refined, mouths[1])):
        sync = lip_sync(frames, audio, SAMPLE_RATE, FPS, region=mouth.mask())
        result[f"best_lag_{name}"], result[f"r_{name}"] = sync.best_lag, round(correlation_near(sync), 3)
    video_s = low.shape[0] / FPS
    result.update({f"s_per_video_s_{stage}": round(s / video_s, 2) for stage, s in seconds.items()})
    return result


def render_refined(low: Tensor, reference: Tensor, audio: Tensor, seed: int, weights_dir: Path | None) -> Tensor:
    """The embedded refiner (shipped, or from ``weights_dir``) on frames [T, 3, h, w] in [-1, 1] with their speech
    [S] and the reference [3, H, W]: [T, 3, H, W] in [-1, 1]."""
    from talkgen_core.pipeline import load_demo_refiner
    from talkgen_core.refine import refine_video

    models = load_demo_refiner(weights_dir=weights_dir)
    frames = (low.permute(0, 2, 3, 1) + 1.0) / 2.0  # ComfyUI's IMAGE layout, [0, 1]
    soundtrack = {"waveform": audio[None, None], "sample_rate": SAMPLE_RATE}
    with torch.no_grad():
        result = refine_video(frames, reference, audio=soundtrack, fps=FPS, models=models, seed=seed)
    return result.images.permute(0, 3, 1, 2) * 2.0 - 1.0


def demo_measures(names: list[str], models, height: int, sync_seconds: float, long_seconds: float,
                  training_clips: int, clip_frames: int, seed: int, weights_dir: Path | None = None,
                  audio_cfg: float | None = None) -> dict:
    """Render what the named measures need with ``models`` and measure it: {measure: {number: value}}."""
    from talkgen_core.metrics import feature_boxes
    from talkgen_core.synth import sample_identity, synthesize_speech
    from talkgen_core.synth.identity import EXAMPLE_IDENTITY_SEED
    from talkgen_core.synth.layout import Placement, columns_placements
    from talkgen_core.synth.render import render_reference

    results: dict[str, dict] = {}
    face = sample_identity(EXAMPLE_IDENTITY_SEED)
    portrait = feature_boxes([(face, Placement())], height, height)[0]
    reference = unit_float(render_reference(face, height))
    if {"eye-detail", "head-motion", "silent-mouth"} & set(names):
        speech = synthesize_speech(SPEECH_SEED, int(long_seconds * SAMPLE_RATE))
        video = render_demo(models, reference, speech, seed, audio_cfg)
        if "eye-detail" in names:
            reconstruction = vae_round_trip(models.vae, reference)
            results["eye_detail"] = measure_eye_detail(reference, portrait, reconstruction, video)
        if "head-motion" in names:
            trained = training_head_motion(training_clips, clip_frames, height)
            results["head_motion"] = measure_head_motion(video, reference, face.hair_rgb, trained, clip_frames)
        if "silent-mouth" in names:
            results["silent_mouth"] = measure_silent_mouth(video, reference, speech, face, portrait.closed_mouth)
        del video
    if "moved-face" in names:
        placement = Placement(*MOVED_PLACEMENT)
        moved = unit_float(render_reference(face, height, placement))
        speech = synthesize_speech(SPEECH_SEED, int(sync_seconds * SAMPLE_RATE))
        true = feature_boxes([(face, placement)], height, height)[0]
        framed = measure_moved_face(render_demo(models, moved, speech, seed, audio_cfg), speech, true.mouth,
                                    portrait.mouth)
        whole = measure_moved_face(render_demo(models, moved, speech, seed, audio_cfg, face_crop="off"), speech,
                                   true.mouth, portrait.mouth)
        results["moved_face"] = {**framed, **{f"whole_frame_{k}": v for k, v in whole.items()}}
    if "two-speakers" in names:
        people = [sample_identity(s) for s in PAIR_IDENTITIES]
        pair = torch.cat([unit_float(render_reference(p, height)) for p in people], dim=2)  # as two_people.png
        boxes = feature_boxes(list(zip(people, columns_placements(2, 2.0))), height, 2 * height)
        mouths = [b.mouth for b in boxes]
        samples = int(sync_seconds * SAMPLE_RATE)
        voices = torch.stack([synthesize_speech(s, samples) for s in (SPEECH_SEED, SECOND_SPEECH_SEED)])
        turns = turn_taking(voices, seed)
        row = {f"turns_{k}": v for k, v in
               measure_two_speakers(render_demo(models, pair, list(turns), seed, audio_cfg), turns, mouths).items()}
        both = measure_two_speakers(render_demo(models, pair, list(voices), seed, audio_cfg), voices, mouths)
        results["two_speakers"] = {**row, **{f"both_{k}": v for k, v in both.items()}}
    if "refiner" in names:
        large = 2 * height
        speech = synthesize_speech(SPEECH_SEED, int(long_seconds * SAMPLE_RATE))
        started = time.perf_counter()
        low = render_demo(models, reference, speech, seed, audio_cfg)
        seconds = {"low": time.perf_counter() - started}
        sharp = unit_float(render_reference(face, large))
        started = time.perf_counter()
        refined = render_refined(low, sharp, speech, seed, weights_dir)
        seconds["refine"] = time.perf_counter() - started
        boxes = feature_boxes([(face, Placement())], large, large)[0]
        results["refiner"] = measure_refiner(low, refined, sharp, boxes.eye_pixels,
                                             face_pixels(face, large, boxes.mouth), (portrait.mouth, boxes.mouth),
                                             speech, seconds)
    return results


def print_measures(results: dict) -> None:
    """The measures as a markdown table: name, value, target."""
    print("| measure | value | target |")
    print("|---|---|---|")
    for measure, numbers in results.items():
        for key, value in numbers.items():
            name = f"{measure}.{key}"
            print(f"| {name} | {value} | {TARGETS.get(name, '')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of the strategies' held-out clip (default 120; 5 with --quick)")
    parser.add_argument("--steps", type=int, default=4, help="solver steps per chunk (default 4, the demo preset)")
    parser.add_argument("--size", type=int, default=64, help="frame height in pixels (default 64, the demo size)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--audio-cfg", type=float, default=None,
                        help="audio guidance scale of every render (default: the demo preset's)")
    parser.add_argument("--weights-dir", "--weights", dest="weights", type=Path, default=None,
                        help="a folder of demo weights to measure (default: the shipped talkgen_core/weights/)")
    parser.add_argument("--strategy", action="append", choices=STRATEGIES, default=None,
                        help="measure only this strategy (repeatable; default: all six, one with --quick)")
    parser.add_argument("--measure", action="append", choices=MEASURES, default=None,
                        help="run only this measure (repeatable; default: all)")
    parser.add_argument("--long-seconds", type=float, default=None,
                        help="the long video of head-motion, silent-mouth and eye-detail (default 120; 4 with --quick)")
    parser.add_argument("--sync-seconds", type=float, default=None,
                        help="the moved-face and two-speaker videos (default 12; 4 with --quick)")
    parser.add_argument("--training-clips", type=int, default=None,
                        help="synthetic training clips for head-motion's reference (default 8; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="seconds of video instead of minutes (smoke test)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.weights is not None:  # measuring random weights by mistake would look like a (very bad) model
        from talkgen_core.models.demo import DEMO_WEIGHT_FILES

        missing = [name for name in DEMO_WEIGHT_FILES.values() if not (args.weights / name).is_file()]
        if missing:
            parser.error(f"--weights-dir {args.weights} lacks {', '.join(missing)}; give the folder that holds "
                         f"all of {', '.join(DEMO_WEIGHT_FILES.values())}")
    pick = lambda value, full, quick: value if value is not None else (quick if args.quick else full)  # noqa: E731
    args.seconds = pick(args.seconds, 120.0, 5.0)  # 5 s: two chunks, so one seam
    measures = args.measure or list(MEASURES)
    report: dict = {}
    if "strategies" in measures:
        strategies = args.strategy or (["infinitetalk latent"] if args.quick else list(STRATEGIES))
        if len(strategies) > 1:  # one process per strategy, so each peak RSS is that strategy's own
            rows = [row for strategy in strategies for row in run_alone(strategy)]
        else:
            rows = [measure_one(args, strategies[0])]
        keys = list(rows[0])
        print("| " + " | ".join(keys) + " |")
        print("|" + "---|" * len(keys))
        for row in rows:
            print("| " + " | ".join(str(row[k]) for k in keys) + " |")
        report["strategies"] = rows
    demo = [m for m in measures if m != "strategies"]
    if demo:
        from talkgen_core.pipeline import load_demo_models

        models = load_demo_models() if args.weights is None else load_demo_models(weights_dir=args.weights)
        print(f"# demo measures: {args.size} px high, weights {args.weights or 'shipped'} "
              f"({'RANDOM' if models.random_weights else 'trained'}), torch {torch.__version__}\n", file=sys.stderr)
        clip_frames = pick(None, TRAINING_CLIP_FRAMES, QUICK_CLIP_FRAMES)
        results = demo_measures(demo, models, args.size, pick(args.sync_seconds, 12.0, 4.0),
                                pick(args.long_seconds, 120.0, 4.0), pick(args.training_clips, 8, 2), clip_frames,
                                args.seed, args.weights, args.audio_cfg)
        print_measures(results)
        report["measures"] = results
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


def run_alone(strategy: str) -> list[dict]:
    """This script for one strategy in a child process (same options); its rows."""
    argv, skip = [], False
    for arg in sys.argv[1:]:  # the parent's options without its --strategy, --measure and --json choices
        if skip:
            skip = False
        elif arg in ("--strategy", "--json", "--measure"):
            skip = True
        elif not arg.startswith(("--strategy=", "--json=", "--measure=")):
            argv.append(arg)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "rows.json"
        subprocess.run([sys.executable, __file__, *argv, "--measure", "strategies", "--strategy", strategy, "--json",
                        str(out)], check=True, stdout=sys.stderr)
        return json.loads(out.read_text())["strategies"]


def measure_one(args, strategy: str) -> dict:
    from talkgen_core.commands.generate import keep_peak_memory_flat

    torch.set_num_threads(1)
    keep_peak_memory_flat()  # as the generate command does

    from talkgen_core.conditioning.speech import embed_speech
    from talkgen_core.pipeline import load_demo_models
    from talkgen_core.synth import render_reference, sample_identity, synthesize_speech

    models = load_demo_models() if args.weights is None else load_demo_models(weights_dir=args.weights)
    audio = synthesize_speech(SPEECH_SEED, int(args.seconds * 16000))
    speech = embed_speech(models.wav2vec2, [audio], fps=FPS)
    image = render_reference(sample_identity(HELD_OUT_IDENTITY), args.size).float() / 127.5 - 1.0  # [3, H, W]
    print(f"# quality: {args.seconds:g} s held-out clip, {args.size}x{args.size}, {args.steps} steps, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{'RANDOM demo weights' if models.random_weights else 'trained demo weights'}\n", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        sink = TapSink(Path(folder) / "frames.f32")
        boundaries, seconds, peak_mib = render(models, speech, image, strategy, args.steps, args.seed, sink,
                                               args.audio_cfg)
        return {"strategy": strategy, **measure(sink.frames(), boundaries, image, speech.mix, seconds, peak_mib)}


if __name__ == "__main__":
    main()
