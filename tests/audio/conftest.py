from __future__ import annotations

import pytest
import torch

from talkgen_core.audio import build_wav2vec2


@pytest.fixture(scope="module")
def tiny_encoder():
    torch.manual_seed(0)
    return build_wav2vec2("tiny")
