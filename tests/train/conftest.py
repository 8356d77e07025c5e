import pytest
import torch

from talkgen_core.audio.wav2vec2 import build_wav2vec2
from talkgen_core.models.vae import build_vae
from talkgen_core.train.config import SMOKE, TrainConfig
from talkgen_core.train.data import ClipBank, render_clip_bank
from talkgen_core.train.latents import LatentBank, build_latent_bank

# Many small tensors: on a shared 2-core machine extra intra-op threads only wait on each other.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_config() -> TrainConfig:
    return SMOKE


@pytest.fixture(scope="session")
def smoke_models():
    torch.manual_seed(0)
    return build_vae(SMOKE.vae), build_wav2vec2(SMOKE.wav2vec2)


@pytest.fixture(scope="session")
def clip_bank(smoke_config) -> ClipBank:
    return render_clip_bank(smoke_config, 0, smoke_config.num_clips)


@pytest.fixture(scope="session")
def latent_bank(smoke_models, clip_bank, smoke_config) -> LatentBank:
    vae, wav2vec2 = smoke_models
    return build_latent_bank(vae, wav2vec2, clip_bank, smoke_config)
