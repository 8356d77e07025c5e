import torch

from talkgen_core.synth.identity import is_held_out_identity
from talkgen_core.train.data import render_clip_bank, to_model_pixels


def test_clip_bank_shapes_and_determinism(clip_bank, smoke_config):
    c = smoke_config
    n, f, s = c.num_clips, c.clip_frames, c.size
    assert clip_bank.frames.shape == (n, f, 3, s, s) and clip_bank.frames.dtype == torch.uint8
    assert clip_bank.face.shape == clip_bank.mouth.shape == (n, f, s, s)
    assert clip_bank.audio.shape == (n, 1, int(f * 16000 / c.fps))
    assert clip_bank.references.shape == (n, 3, s, s)
    again = render_clip_bank(c, 0, 1)
    assert torch.equal(again.frames[0], clip_bank.frames[0]) and torch.equal(again.audio[0], clip_bank.audio[0])
    assert not torch.equal(clip_bank.frames[0], clip_bank.frames[1])


def test_training_clips_use_training_identities():
    from talkgen_core.synth import make_clip

    assert not any(is_held_out_identity(make_clip(i, num_frames=1, size=16).identity.seed) for i in range(5))


def test_pixel_convention():
    u8 = torch.tensor([0, 255], dtype=torch.uint8)
    assert to_model_pixels(u8).tolist() == [-1.0, 1.0]
