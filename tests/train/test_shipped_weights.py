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
