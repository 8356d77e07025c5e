"""Face framing for the demo model: the window fit, crop and paste, the detector's windows on synthetic faces,
and generate() with face_crop."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from talkgen_core.conditioning.face_window import (
    FEATHER_PX, FaceWindow, PastingSink, find_face_window, fit_window, is_portrait_framing, portrait_template,
)
from talkgen_core.refine.detectors import net_detector
from talkgen_core.refine.embedded import has_embedded_refiner, load_landmark_net
from talkgen_core.sampling.references import resize_and_crop, to_pixels
from talkgen_core.synth import sample_identity
from talkgen_core.synth.identity import EXAMPLE_IDENTITY_SEED
from talkgen_core.synth.layout import Placement
from talkgen_core.synth.render import render_reference
from talkgen_core.video.writer import FrameCollector

REPO_ROOT = Path(__file__).resolve().parents[2]
MOVED = Placement(0.2, -0.15, 0.75)  # benchmarks/quality.py's moved-and-shrunk example face

needs_landmarks = pytest.mark.skipif(not has_embedded_refiner(), reason="the shipped landmark network is missing")


def picture(seed: int, placement: Placement = Placement(), size: int = 64) -> torch.Tensor:
    return render_reference(sample_identity(seed), size, placement).float() / 127.5 - 1.0  # [3, H, W]


def test_fit_window_recovers_scale_and_shift():
    template = portrait_template()
    points = 0.75 * (template + 0.5) + torch.tensor([12.0, -3.0]) - 0.5  # the template's frame moved and shrunk
    window, misfit = fit_window(points, template)
    assert window.side == pytest.approx(48.0, abs=1e-4)
    assert (window.left, window.top) == (pytest.approx(12.0, abs=1e-4), pytest.approx(-3.0, abs=1e-4))
    assert misfit < 1e-6
    scattered = points + torch.randn(points.shape, generator=torch.Generator().manual_seed(0)) * 6.0
    assert fit_window(scattered, template)[1] > 0.06  # not a face's layout


def test_portrait_framing_tolerance():
    assert is_portrait_framing(FaceWindow(1.0, -1.0, 66.0), (64, 64))
    assert is_portrait_framing(FaceWindow(24.0, 0.0, 64.0), (64, 112))  # the centred square of a wide frame
    assert is_portrait_framing(FaceWindow(4.8, 4.8, 54.4), (64, 64))  # a small face, as some identities have
    assert not is_portrait_framing(FaceWindow(8.0, 8.0, 48.0), (64, 64))  # centred at 75 %
    assert not is_portrait_framing(FaceWindow(14.4, 3.2, 48.0), (64, 64))  # smaller and moved
    assert not is_portrait_framing(FaceWindow(8.0, 0.0, 64.0), (64, 64))  # moved right by 8 px


def test_crop_then_paste_gives_the_picture_back():
    image = picture(EXAMPLE_IDENTITY_SEED, MOVED)
    window = FaceWindow(14.4, 3.2, 48.0)
    crop = window.crop(image, (64, 64), 64)  # [3, 64, 64], upsampled from 48 px
    assert crop.shape == (3, 64, 64)
    pasted = window.paste(crop[None], torch.zeros_like(image))[0]
    inner = (slice(3 + 3, 3 + 48 - 3), slice(15 + 3, 14 + 48 - 3))  # away from the feathered edge
    assert (pasted[:, inner[0], inner[1]] - image[:, inner[0], inner[1]]).abs().mean() < 0.03
    assert pasted[:, :2].abs().max() == 0.0 and pasted[:, :, :13].abs().max() == 0.0  # outside: the background
    edge = pasted[:, 30, 14]  # column 14 is 0.9 px inside the window: partly background
    assert 0.0 < float(edge.abs().max()) < float(image[:, 30, 14].abs().max()) + 1e-6


def test_crop_takes_the_pixels_from_a_larger_picture():
    big = picture(EXAMPLE_IDENTITY_SEED, MOVED, size=256)
    window = FaceWindow(14.4, 3.2, 48.0)
    from_big = window.crop(big, (64, 64), 64)
    from_small = window.crop(picture(EXAMPLE_IDENTITY_SEED, MOVED), (64, 64), 64)
    detail = lambda x: float((x[:, 1:, 1:] - x[:, :-1, :-1]).abs().mean())  # noqa: E731
    assert detail(from_big) > 1.1 * detail(from_small)  # sharper than upsampling the 64-px frame


def test_pasting_sink_writes_whole_frames():
    collector = FrameCollector()
    background = torch.full((3, 32, 48), -1.0)
    sink = PastingSink(collector, FaceWindow(8.0, 4.0, 16.0), background)
    sink.write(torch.ones(2, 3, 16, 16))
    sink.close()
    frames = collector.images()  # [T, H, W, 3] in [0, 1]
    assert frames.shape == (2, 32, 48, 3)
    assert float(frames[0, 12, 16].min()) == 1.0 and float(frames[0, 0, 0].max()) == 0.0
    assert FEATHER_PX >= 1.0


@needs_landmarks
def test_windows_on_synthetic_faces():
    detect = net_detector(load_landmark_net())
    for seed in (EXAMPLE_IDENTITY_SEED, 3, 8, 9, 11, 1000, 1500):  # held-out and training faces as portraits
        assert find_face_window(picture(seed), detect) is None, seed
    face_png = resize_and_crop(to_pixels(REPO_ROOT / "example_inputs" / "face.png"), 64, 64)
    assert find_face_window(face_png, detect) is None  # make demo's face: rendered as before
    window = find_face_window(picture(EXAMPLE_IDENTITY_SEED, MOVED), detect)
    assert window is not None
    assert window.side == pytest.approx(48.0, abs=3.0)  # 75 % of 64 px
    assert window.left + window.side / 2 == pytest.approx(32.0 + 0.2 * 32, abs=2.0)
    assert window.top + window.side / 2 == pytest.approx(32.0 - 0.15 * 32, abs=2.0)
    for blank in (torch.zeros(3, 64, 64), torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1):
        assert find_face_window(blank, detect) is None  # no face: the whole frame


@needs_landmarks
def test_generate_frames_a_moved_face_and_keeps_the_rest(tmp_path):
    from talkgen_core.pipeline import DemoWeightsWarning, generate, load_demo_models
    from talkgen_core.sampling.streaming import Cancelled
    from talkgen_core.validation import SettingsError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DemoWeightsWarning)
        models = load_demo_models()
    image = picture(EXAMPLE_IDENTITY_SEED, MOVED)
    speech = torch.sin(torch.arange(16000) / 16000 * 2 * torch.pi * 180.0) * 0.3
    framed = generate(audio=speech, image=image, models=models, size="64x64", job_dir=tmp_path / "job",
                      steps=2, chunk_frames=17, context_frames=5)
    whole = generate(audio=speech, image=image, models=models, size="64x64", face_crop="off", steps=2,
                     chunk_frames=17, context_frames=5)
    assert framed.images.shape == whole.images.shape == (25, 64, 64, 3)
    manifest = (tmp_path / "job" / "manifest.json").read_text()
    assert '"face_window"' in manifest
    # outside the window (left 14.4, top 3.2, side 48, give or take the fit) the picture stays as it is
    still = (image.permute(1, 2, 0) + 1) / 2
    assert (framed.images[:, 56:, :8] - still[56:, :8]).abs().max() < 2e-2
    assert (framed.images - whole.images).abs().mean() > 1e-3  # and the run differs from the whole-frame one
    with pytest.raises(SettingsError, match="face_crop 'centre' is not one of: auto, off"):
        generate(audio=speech, image=image, models=models, face_crop="centre")
    written: list[int] = []  # cancelled once the first chunk's frames are in the mp4: the framed run drops it
    with pytest.raises(Cancelled):
        generate(audio=speech, image=image, models=models, size="64x64", steps=2, chunk_frames=17,
                 context_frames=5, out=tmp_path / "cancelled" / "out.mp4", cancel=lambda: bool(written),
                 progress=lambda report: written.append(report.frames_written) if report.kind == "chunk" else None)
    assert written and written[0] > 0
    assert list((tmp_path / "cancelled").iterdir()) == []  # neither the mp4 nor the writer's temp files


@needs_landmarks
def test_cli_reports_the_window_and_face_crop_off_renders_the_whole_frame(tmp_path):
    import json

    from PIL import Image

    from helpers.tiny_inputs import write_gated_tone
    from talkgen_core.cli import main
    from talkgen_core.pipeline import DemoWeightsWarning

    moved = render_reference(sample_identity(EXAMPLE_IDENTITY_SEED), 128, MOVED)  # [3, H, W] uint8
    Image.fromarray(moved.permute(1, 2, 0).numpy()).save(tmp_path / "moved.png")
    write_gated_tone(tmp_path / "a.wav")
    reports = {}
    for mode in ("auto", "off"):
        report = tmp_path / f"{mode}.json"
        args = ["generate", "--image", str(tmp_path / "moved.png"), "--audio", str(tmp_path / "a.wav"), "--out",
                str(tmp_path / f"{mode}.mp4"), "--steps", "1", "--face-crop", mode, "--report", str(report)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DemoWeightsWarning)
            assert main(args) == 0
        reports[mode] = json.loads(report.read_text())
    window = reports["auto"]["face_window"]
    assert window["side"] == pytest.approx(48.0, abs=3.0)  # at the demo size, 64 px high
    assert (reports["auto"]["width"], reports["auto"]["height"]) == (64, 64)
    assert reports["off"]["face_window"] is None
