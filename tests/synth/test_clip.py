import torch

from talkgen_core.metrics.lipsync import measure_mouth_opening
from talkgen_core.synth import SAMPLE_RATE, make_clip
from talkgen_core.synth.identity import FIRST_TRAINING_IDENTITY_SEED, is_held_out_identity


def test_deterministic_and_seed_dependent():
    a = make_clip(3, num_frames=20, size=64)
    b = make_clip(3, num_frames=20, size=64)
    c = make_clip(4, num_frames=20, size=64)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.audio, b.audio)
    assert torch.equal(a.head_pose, b.head_pose) and torch.equal(a.blink, b.blink)
    assert not torch.equal(a.frames, c.frames) and not torch.equal(a.audio, c.audio)


def test_shapes_and_conventions():
    clip = make_clip(5, num_frames=30, size=64, fps=25.0)
    assert clip.frames.shape == (30, 3, 64, 64) and clip.frames.dtype == torch.uint8
    assert clip.audio.shape == (30 * SAMPLE_RATE // 25,)
    assert clip.mouth_opening.shape == clip.blink.shape == (30,)
    assert clip.head_pose.shape == (30, 4)
    assert clip.face_mask.shape == clip.mouth_mask.shape == (30, 64, 64)
    f = clip.frames_float()
    assert f.min() >= -1.0 and f.max() <= 1.0
    assert clip.identity.seed == FIRST_TRAINING_IDENTITY_SEED + 5
    assert not is_held_out_identity(clip.identity.seed)


def test_measured_mouth_opening_matches_ground_truth():
    for size in (64, 128):
        clip = make_clip(8, num_frames=100, size=size)
        measured = measure_mouth_opening(clip.frames)
        corr = torch.corrcoef(torch.stack([measured, clip.mouth_opening]))[0, 1].item()
        assert corr > 0.9, (size, corr)


def test_external_audio_drives_the_mouth():
    audio = torch.zeros(SAMPLE_RATE)  # 1 s: silent, then a loud burst in the second half
    audio[SAMPLE_RATE // 2 :] = 0.3 * torch.sin(torch.arange(SAMPLE_RATE // 2) * 0.2)
    clip = make_clip(1, num_frames=25, size=64, audio=audio, lead_frames=0.0)
    assert clip.mouth_opening[:10].max().item() == 0.0
    assert clip.mouth_opening[15:].min().item() > 0.5
