"""Demo v2's recipe: faces placed anywhere, two-person clips with two audio streams, eyes weighted up."""

from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from talkgen_core.models.demo import CONFIG_METADATA_KEY, DEMO_MODEL_NAMES, DEMO_WEIGHT_FILES, demo_config_names
from talkgen_core.models.dit import build_dit
from talkgen_core.train.batches import sample_dit_batch
from talkgen_core.train.config import SMOKE_V2, TrainConfig, get_train_config
from talkgen_core.train.data import render_clip_bank, render_pair_bank, speaker_columns
from talkgen_core.train.latents import build_latent_bank
from talkgen_core.train.objective import flow_matching_loss
from talkgen_core.train.vae_stage import sample_vae_batch


@pytest.fixture(scope="module")
def pair_bank():
    return render_pair_bank(SMOKE_V2, 0, 2)


def test_speaker_columns_split_between_the_speakers():
    masks = speaker_columns([-1.0, 0.5], 4, 8)  # x pixel centres -1.75 .. 1.75 in steps of 0.5
    assert torch.equal(masks.sum(0), torch.ones(4, 8))
    assert masks[0, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]  # the cut is at -0.25; that pixel goes right


def test_pair_bank_holds_two_voices_and_two_regions(pair_bank):
    size = SMOKE_V2.size
    assert pair_bank.frames.shape == (2, SMOKE_V2.clip_frames, 3, size, 2 * size)
    assert pair_bank.num_speakers == 2 and pair_bank.audio.shape[:2] == (2, 2)
    assert pair_bank.speaker_masks is not None and pair_bank.speaker_masks.shape == (2, 2, size, 2 * size)
    assert pair_bank.references.shape == (2, 3, size, 2 * size)
    # the two voices differ and each mask holds one face
    assert not torch.equal(pair_bank.audio[0, 0], pair_bank.audio[0, 1])
    face = pair_bank.face[0, 0].float()
    for k in range(2):
        assert float((face * pair_bank.speaker_masks[0, k]).sum()) > 0.2 * float(face.sum())


def test_solo_clips_are_placed_when_the_recipe_varies_placement():
    placed = render_clip_bank(SMOKE_V2, 0, 3)
    centred = render_clip_bank(replace(SMOKE_V2, vary_placement=False), 0, 3)
    assert placed.audio.shape[1] == 1 and placed.eye is not None
    moved = [not torch.equal(placed.face[i, 0], centred.face[i, 0]) for i in range(3)]
    assert any(moved)


def test_two_person_batches_carry_two_streams_and_per_sample_masks(smoke_models, pair_bank):
    vae, wav2vec2 = smoke_models
    latents = build_latent_bank(vae, wav2vec2, pair_bank, SMOKE_V2)
    assert latents.audio_features.shape[1] == 2 and latents.speaker_masks.shape == (2, 2, 4, 8)
    batch = sample_dit_batch(latents, SMOKE_V2, 2, torch.Generator().manual_seed(0))
    b = SMOKE_V2.dit_batch
    assert batch.audio.shape[:3] == (b, 2, SMOKE_V2.chunk_frames)
    assert batch.speaker_masks.shape == (b, 2, 4, 8)
    dit = build_dit(SMOKE_V2.dit, seed=0)
    loss = flow_matching_loss(dit, batch, torch.Generator().manual_seed(1), shift=7.0, audio_dropout=0.0,
                              face_weight=1.0, mouth_weight=4.0).loss
    loss.backward()
    assert torch.isfinite(loss) and dit.audio_proj.proj1.weight.grad.abs().sum() > 0


def test_per_sample_masks_route_each_sample_as_its_own_masks_would():
    dit = build_dit("tiny", seed=0).eval()
    g = torch.Generator().manual_seed(0)
    z, t, h, w = 16, 3, 4, 8
    x = torch.randn(2, z, t, h, w, generator=g)
    cond = torch.randn(2, 4 + z, t, h, w, generator=g)
    text = torch.zeros(2, 1, dit.config.text_dim)
    audio = torch.randn(2, 2, 9, 5, dit.config.audio_layers, dit.config.audio_dim, generator=g)
    masks = torch.zeros(2, 2, h, w)
    masks[0, 0, :, :4], masks[0, 1, :, 4:] = 1, 1  # halves
    masks[1, 0, :, :2], masks[1, 1, :, 2:] = 1, 1  # a narrow left speaker
    with torch.no_grad():
        both = dit(x, torch.tensor([500.0, 300.0]), text, cond, audio=audio, speaker_masks=masks)
        for i, time in enumerate((500.0, 300.0)):
            alone = dit(x[i:i + 1], torch.tensor([time]), text[:1], cond[i:i + 1], audio=audio[i:i + 1],
                        speaker_masks=masks[i])
            assert torch.allclose(both[i:i + 1], alone, atol=1e-5)
        swapped = dit(x, torch.tensor([500.0, 300.0]), text, cond, audio=audio, speaker_masks=masks.flip(0))
    assert not torch.allclose(both, swapped, atol=1e-4)  # the masks matter
    with pytest.raises(ValueError, match="label RoPE"):
        dit(x, torch.tensor([500.0, 300.0]), text, cond, audio=audio, speaker_masks=masks, speaker_routing="mask")


def test_the_eyes_are_weighted_up_in_the_vae_loss(clip_bank):
    bank = render_clip_bank(SMOKE_V2, 0, 2)
    cfg = replace(SMOKE_V2, vae_crop=SMOKE_V2.size, vae_mouth_weight=0.0)
    batch = sample_vae_batch(bank, cfg, torch.Generator().manual_seed(0), single_frames=True)
    plain = sample_vae_batch(bank, replace(cfg, vae_eye_weight=0.0), torch.Generator().manual_seed(0), True)
    assert torch.equal(plain.weights, torch.ones_like(plain.weights))
    assert float(batch.weights.max()) == pytest.approx(1.0 + SMOKE_V2.vae_eye_weight, abs=0.05)


def test_pair_fields_are_checked():
    with pytest.raises(ValueError, match="pair_clips"):
        TrainConfig(name="x", pair_clips=4, pair_share=0.0)
    assert get_train_config("demo-v2").pair_clips > 0 and get_train_config("demo-v2").vae == "demo-v2"


def test_demo_weights_name_their_configs(tmp_path):
    assert demo_config_names(tmp_path) == DEMO_MODEL_NAMES  # no files: the first demo model's names
    save_file({"a": torch.zeros(1)}, str(tmp_path / DEMO_WEIGHT_FILES["vae"]), metadata={CONFIG_METADATA_KEY: "demo-v2"})
    save_file({"a": torch.zeros(1)}, str(tmp_path / DEMO_WEIGHT_FILES["dit"]))
    names = demo_config_names(tmp_path)
    assert names["vae"] == "demo-v2" and names["dit"] == DEMO_MODEL_NAMES["dit"]
