"""``benchmarks/quality.py``'s demo measures on the renderer's own clips (ground truth), and its quick run."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from talkgen_core.metrics import feature_boxes
from talkgen_core.synth import make_clip, render_reference, sample_identity, synthesize_speech
from talkgen_core.synth.clip import make_pair_clip
from talkgen_core.synth.layout import Placement, columns_placements

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def face():
    identity = sample_identity(7)
    return identity, feature_boxes([(identity, Placement())], 64, 64)[0]


def test_eye_detail_of_the_reference_is_one_and_of_a_blur_less(quality, face):
    identity, boxes = face
    reference = quality.unit_float(render_reference(identity, 64))
    same = quality.measure_eye_detail(reference, boxes, reference, reference[None].expand(3, -1, -1, -1))
    assert same == {"vae_ratio": 1.0, "frame0_ratio": 1.0, "video_mean_ratio": 1.0, "vae_box_ratio": 1.0}
    blurred = F.avg_pool2d(F.pad(reference[None], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    less = quality.measure_eye_detail(reference, boxes, blurred[0], torch.cat([reference[None], blurred]))
    assert less["vae_ratio"] < 0.6 and less["vae_box_ratio"] < 0.6 and less["frame0_ratio"] == 1.0
    assert less["video_mean_ratio"] == pytest.approx((1.0 + less["vae_ratio"]) / 2, abs=1e-3)


def test_moved_face_is_in_sync_at_its_true_mouth_only(quality, face):
    identity, portrait = face
    placement = Placement(*quality.MOVED_PLACEMENT)
    speech = synthesize_speech(quality.SPEECH_SEED, 8 * 16000)
    clip = make_clip(5, num_frames=200, size=64, identity=identity, audio=speech, placement=placement,
                     lead_frames=0.0)
    true = feature_boxes([(identity, placement)], 64, 64)[0]
    row = quality.measure_moved_face(clip.frames, speech, true.mouth, portrait.mouth)
    assert row["best_lag"] == 0 and row["r"] > 0.9 and row["true_only_r"] > 0.8
    assert row["portrait_r"] < row["r"]  # the portrait's box holds only the bottom of the moved mouth
    at_portrait = make_clip(5, num_frames=200, size=64, identity=identity, audio=speech, lead_frames=0.0)
    wrong = quality.measure_moved_face(at_portrait.frames, speech, true.mouth, portrait.mouth)
    assert wrong["portrait_r"] > 0.9 and wrong["true_only_r"] == 0.0  # a mouth at the portrait's place
    assert wrong["r"] > 0.4  # reaches into the true box: r alone cannot tell it from a mouth at its true place


def test_head_motion_of_a_still_video_is_zero_and_of_training_clips_not(quality, face):
    identity, _ = face
    reference = render_reference(identity, 64)
    still = reference[None].expand(60, -1, -1, -1)
    trained = quality.training_head_motion(1, 50, 64)
    assert trained > 0.2
    row = quality.measure_head_motion(still, reference, identity.hair_rgb, trained, 50)
    assert row["video_spread_px"] == 0.0 and row["windowed_spread_px"] == 0.0 and row["ratio"] == 0.0
    clip = make_clip(0, num_frames=50, size=64)
    own = quality.measure_head_motion(clip.frames, render_reference(clip.identity, 64), clip.identity.hair_rgb,
                                      trained, 50)
    assert own["ratio"] == pytest.approx(1.0, abs=1e-3)


def test_rendered_face_keeps_its_lips_in_silence(quality, face):
    identity, boxes = face
    speech = synthesize_speech(quality.SPEECH_SEED, 8 * 16000)
    clip = make_clip(5, num_frames=200, size=64, identity=identity, audio=speech)
    row = quality.measure_silent_mouth(clip.frames, render_reference(identity, 64), speech, identity,
                                       boxes.closed_mouth)
    assert row["silent_frames"] > 10 and 0.8 < row["share"] < 1.2


def test_turn_taking_never_overlaps_and_rendered_pair_follows_own_voices(quality):
    samples = 8 * 16000
    voices = torch.stack([synthesize_speech(s, samples) for s in (quality.SPEECH_SEED, quality.SECOND_SPEECH_SEED)])
    turns = quality.turn_taking(voices, 0)
    ramp = int(quality.TURN_RAMP_S * 16000)
    both = (turns[0].abs() > 0) & (turns[1].abs() > 0)
    assert 0 < int(both.sum()) <= ramp * 8  # only inside the ramps at the (at most 8) turns
    assert (turns[0].abs() > 0).any() and (turns[1].abs() > 0).any()
    placements = columns_placements(2, 2.0)
    clip = make_pair_clip(1, num_frames=200, height=64, identities=quality.PAIR_IDENTITIES, audio=turns,
                          placements=placements, lead_frames=0.0)
    mouths = [b.mouth for b in feature_boxes(list(zip(clip.identities, placements)), 64, 128)]
    row = quality.measure_two_speakers(clip.frames, turns, mouths)
    assert row["own_r_left"] > 0.85 and row["own_r_right"] > 0.85
    assert row["other_r_left"] <= 0.15 and row["other_r_right"] <= 0.15


@pytest.mark.slow
def test_quick_run_measures_everything(tmp_path):
    out = tmp_path / "quality.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| moved_face.r |" in done.stdout and "| strategy | best_lag |" in done.stdout
    report = json.loads(out.read_text())
    assert [row["strategy"] for row in report["strategies"]] == ["infinitetalk latent"]
    measures = report["measures"]
    assert set(measures) == {"eye_detail", "moved_face", "head_motion", "silent_mouth", "two_speakers", "refiner"}
    refiner = measures["refiner"]
    assert refiner["eye_detail_refined"] > refiner["eye_detail_bicubic"] > 0 and refiner["s_per_video_s_refine"] > 0
    assert 0 < measures["eye_detail"]["vae_ratio"] < 2 and measures["head_motion"]["training_spread_px"] > 0
    assert all(math.isfinite(v) for m in ("eye_detail", "moved_face", "two_speakers", "refiner")
               for v in measures[m].values())
