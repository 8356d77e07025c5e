import pytest
import torch

from talkgen_core.synth import TalkingClip, make_clip

# The renderer works on many small tensors; on a shared 2-core machine intra-op threads mostly wait on each
# other (measured 25x slower wall time), so these tests run single-threaded.
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def talking_clip() -> TalkingClip:
    """8 s of a synthetic talking face at 64 px, mouth leading the audio by 1 frame (the default)."""
    return make_clip(21, num_frames=200, size=64)
