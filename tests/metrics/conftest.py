import pytest

from talkgen_core.synth import TalkingClip, make_clip


@pytest.fixture(scope="module")
def talking_clip() -> TalkingClip:
    """8 s of a synthetic talking face at 64 px, mouth leading the audio by 1 frame (the default)."""
    return make_clip(21, num_frames=200, size=64)
