"""The weights in talkgen_core/weights/ load as the demo model and make a held-out face talk in sync."""

import warnings

import pytest
import torch

from talkgen_core.models.demo import demo_config_names
from talkgen_core.models.vae import build_vae
from talkgen_core.pipeline import DEMO_WEIGHT_FILES, WEIGHTS_DIR, DemoWeightsWarning, load_demo_models
from talkgen_core.train.evaluate import evaluate_demo
from talkgen_core.train.vae_stage import inflate_temporal_init

WEIGHTS_LIMIT_BYTES = 40 * 1000 * 1000  # every shipped weight file together (demo v2 issue: <= 40 MB)


@pytest.fixture(scope="module")
def shipped_models():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DemoWeightsWarning)  # random weights would fail here, not pass quietly
        return load_demo_models()


def test_shipped_weights_are_complete_and_small():
    sizes = {path.name: path.stat().st_size for path in WEIGHTS_DIR.glob("*.safetensors")}
    assert set(DEMO_WEIGHT_FILES.values()) <= set(sizes), sizes
    assert sum(sizes.values()) <= WEIGHTS_LIMIT_BYTES, sizes


def test_shipped_weights_load_as_the_demo_model(shipped_models):
    assert shipped_models.is_demo and not shipped_models.random_weights


def test_shipped_vae_keeps_the_recipes_temporal_resampling(shipped_models):
    """Training never changes the VAE's temporal resampling (single frames never reach it), so the shipped VAE
    holds exactly what ``inflate_temporal_init`` starts it with: the decoder interpolates between latents."""
    vae = shipped_models.vae
    fresh = build_vae(demo_config_names()["vae"])
    inflate_temporal_init(fresh)
    shipped, recipe = vae.state_dict(), fresh.state_dict()
    resampling = [k for k in recipe if ".time_conv." in k]
    assert len(resampling) == 8 and vae.config.stream_start_hold == 2
    assert all(torch.equal(shipped[k], recipe[k]) for k in resampling)


def test_held_out_face_talks_in_sync(shipped_models):
    """4 s of a held-out identity and held-out speech through the real pipeline (two chunks, one seam).

    The renderer's mouth leads its audio by about one frame and the VAE decoder's interpolation shows motion one
    frame late, so the expected best lag is about 0."""
    result = evaluate_demo(shipped_models.dit, shipped_models.vae, shipped_models.wav2vec2, size=64, seconds=4.0)
    assert result.mouth_opening_std > 1e-3  # a mouth is drawn and it moves
    assert -2 <= result.best_lag <= 1
    assert result.peak_correlation >= 0.4
    assert result.mean_face_iou >= 0.5  # the face stays where the reference put it


def test_the_shipped_student_is_the_base_models_on_its_own_grid():
    """The distilled student ships beside the base DiT, trained as the same config on the grid its preset uses."""
    import json

    from safetensors import safe_open

    from talkgen_core.models.demo import DEMO_STUDENT_FILE
    from talkgen_core.sampling.presets import get_sampling_preset
    from talkgen_core.sampling.schedules import explicit_timesteps
    from talkgen_core.train.distill import GRID_METADATA_KEY

    preset = get_sampling_preset("demo-distilled")
    with safe_open(str(WEIGHTS_DIR / DEMO_STUDENT_FILE), framework="pt") as f:
        grid = json.loads(f.metadata()[GRID_METADATA_KEY])
    assert grid == [float(t) for t in explicit_timesteps(preset.timesteps, preset.shift)]
    student = load_demo_models(variant="distilled")
    assert student.sampling_preset == preset.name and not student.random_weights
    assert student.dit.config == load_demo_models().dit.config


def test_the_shipped_refiner_brings_the_eyes_back_at_twice_the_size(shipped_models):
    """2 s of a held-out face at the demo size, refined by the shipped embedded refiner: 128 px, the frames and
    the speech kept, the eyes sharper than a bicubic upscale's and the mouth still in sync."""
    import torch.nn.functional as F

    from talkgen_core.metrics import correlation_near, detail_ratio, feature_boxes, lip_sync
    from talkgen_core.pipeline import generate, load_demo_refiner
    from talkgen_core.refine import refine_video
    from talkgen_core.sampling.presets import get_sampling_preset
    from talkgen_core.synth import sample_identity, synthesize_speech
    from talkgen_core.synth.layout import Placement
    from talkgen_core.synth.render import render_reference

    refiner = load_demo_refiner()
    preset = get_sampling_preset("demo-refiner")
    info = refiner.dit.info
    assert refiner.dit.scale == 2 and (info["chunk_frames"], info["context_frames"]) == (preset.chunk_frames,
                                                                                        preset.context_frames)
    assert refiner.vae is not shipped_models.vae  # the decoder fitted to 128 px, on a copy
    face = sample_identity(11)  # held out
    small, sharp = (render_reference(face, size).float() / 127.5 - 1.0 for size in (64, 128))
    speech = synthesize_speech(515151, 2 * 16000)
    low = generate(image=small, audio=speech, models=shipped_models, size="64x64").images  # [T, 64, 64, 3]
    high = refine_video(low, sharp, audio={"waveform": speech[None, None], "sample_rate": 16000}, fps=25.0,
                        models=refiner).images
    assert high.shape == (low.shape[0], 128, 128, 3)
    frames = high.permute(0, 3, 1, 2) * 2.0 - 1.0
    bicubic = F.interpolate(low.permute(0, 3, 1, 2) * 2.0 - 1.0, size=(128, 128), mode="bicubic").clamp(-1, 1)
    eyes = feature_boxes([(face, Placement())], 128, 128)[0]
    detail = [float(detail_ratio(v, sharp, eyes.eye_pixels).mean()) for v in (frames, bicubic)]
    assert detail[0] > 1.3 * detail[1]
    sync = lip_sync(frames, speech, 16000, 25.0, region=eyes.mouth.mask())
    assert abs(sync.best_lag) <= 1 and correlation_near(sync) >= 0.4
