import pytest
import torch

from talkgen_core.metrics.feature_boxes import feature_boxes
from talkgen_core.metrics.speakers import speaker_sync
from talkgen_core.synth import synthesize_speech
from talkgen_core.synth.clip import make_pair_clip
from talkgen_core.synth.layout import columns_placements


def _alternating(voices: torch.Tensor, turn: int) -> torch.Tensor:
    """[2, S] voices speaking in turns of ``turn`` samples (left first)."""
    gate = (torch.arange(voices.shape[1]) // turn) % 2
    return voices * torch.stack([1 - gate, gate]).float()


def test_each_rendered_mouth_follows_its_own_voice_only():
    samples = 200 * 640
    voices = _alternating(torch.stack([synthesize_speech(s, samples) for s in (5, 6)]), 40 * 640)
    placements = columns_placements(2, 2.0)
    clip = make_pair_clip(3, num_frames=200, height=64, identities=(8, 9), audio=voices, placements=placements,
                          lead_frames=0.0)
    boxes = feature_boxes(list(zip(clip.identities, placements)), 64, 128)
    regions = torch.stack([b.mouth.mask() for b in boxes])
    r = speaker_sync(clip.frames, clip.audio, regions, 16000, 25.0)
    assert r[0, 0] > 0.85 and r[1, 1] > 0.85
    assert r[0, 1] < 0.0 and r[1, 0] < 0.0  # turns: a mouth is shut while the other voice speaks
    swapped = speaker_sync(clip.frames, clip.audio.flip(0), regions, 16000, 25.0)
    assert torch.allclose(swapped, r.flip(1))


def test_one_voice_per_region_is_required():
    with pytest.raises(ValueError, match="one voice"):
        speaker_sync(torch.zeros(4, 3, 8, 8), torch.zeros(2, 2560), torch.ones(1, 8, 8, dtype=torch.bool), 16000, 25.0)
