import pytest
import torch

from talkgen_core.metrics.drift import drift, slope_per_second
from talkgen_core.synth import render_reference


def test_slope_of_a_line_is_exact():
    values = 0.5 + 2.0 * torch.arange(50) / 25.0
    assert slope_per_second(values, 25.0) == pytest.approx(2.0)
    assert slope_per_second(torch.ones(10), 25.0) == pytest.approx(0.0)


def test_stable_talking_video_has_no_drift(talking_clip):
    ref = render_reference(talking_clip.identity, 64)
    r = drift(talking_clip.frames, ref, talking_clip.fps)
    assert abs(r.face_colour_slope) < 0.1
    assert abs(r.background_colour_slope) < 0.05
    assert abs(r.shape_error_slope) < 0.01
    assert r.face_iou.mean().item() > 0.75
    assert r.face_delta_e.shape == (200,)


def test_progressive_tint_is_reported_as_colour_drift(talking_clip):
    ref = render_reference(talking_clip.identity, 64)
    ramp = torch.linspace(0.0, 1.0, talking_clip.num_frames).view(-1, 1, 1, 1)
    tint = ramp * torch.tensor([0.12, 0.0, -0.08]).view(1, 3, 1, 1)  # warmer and warmer
    tinted = (talking_clip.frames_float() + tint).clamp(-1.0, 1.0)
    r = drift(tinted, ref, talking_clip.fps)
    assert r.face_colour_slope > 0.8  # delta E per second over the 8 s clip
    assert r.background_colour_slope > 0.8
    assert r.face_delta_e[-10:].mean() > r.face_delta_e[:10].mean() + 5.0


def test_shrinking_face_is_reported_as_shape_drift():
    from talkgen_core.synth.identity import sample_identity, with_changes
    from talkgen_core.synth.render import render_frames

    ident = sample_identity(1003)
    frames = torch.stack(
        [
            render_reference(with_changes(ident, face_half_width=ident.face_half_width * s), 64)
            for s in torch.linspace(1.0, 0.75, 50).tolist()
        ]
    )
    r = drift(frames, render_reference(ident, 64), 25.0)
    assert r.shape_error_slope > 0.05
    assert r.face_iou[-1] < 0.9 < r.face_iou[0]
    still = render_frames(ident, torch.zeros(50), torch.zeros(50, 4), torch.zeros(50), 64).frames
    assert abs(drift(still, render_reference(ident, 64), 25.0).shape_error_slope) < 1e-6
