"""The training-free refiner on the demo model: size, frame count, fps and soundtrack kept, anchor, resume."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from helpers.demo_fixtures import models, inputs  # noqa: F401 (pytest fixtures)
from talkgen_core.pipeline import generate
from talkgen_core.refine import refine_video, refined_size
from talkgen_core.refine.upscale import UpscaledFrames, upscale_frame
from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.sampling.references import VideoReferences
from talkgen_core.video.frames import FrameSequence

FAST = {"chunk_frames": 17, "context_frames": 5, "steps": 2}


@pytest.fixture(scope="module")
def low_res(models, inputs, tmp_path_factory):
    """A 16x16 video of 1 s at 24 fps made by generate, with its soundtrack."""
    out = tmp_path_factory.mktemp("lr") / "lr.mp4"
    generate(image=inputs / "face.png", audio=inputs / "a.wav", out=out, fps=24, size="16x16", models=models, **FAST)
    return out


def probe(path) -> tuple[int, float, int, int, float]:
    """(frames, fps, width, height, audio seconds) of an mp4."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate, width, height = float(stream.average_rate), stream.codec_context.width, stream.codec_context.height
        frames = sum(1 for _ in container.decode(stream))
    with av.open(str(path)) as container:
        audio = sum(f.samples for f in container.decode(container.streams.audio[0])) / container.streams.audio[0].rate
    return frames, rate, width, height, audio


def test_refined_size_rounds_to_multiples_of_16():
    assert refined_size(16, 16, 2) == (32, 32)
    assert refined_size(48, 40, 2) == (96, 80)
    assert refined_size(60, 36, 1.5) == (96, 48)
    with pytest.raises(ValueError, match="scale"):
        refined_size(16, 16, 0)


def test_upscaled_frames_are_bicubic_and_keep_timing():
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    up = UpscaledFrames(FrameSequence(frames, 24.0), 16, 32)
    assert (up.fps, up.frame_count, up.height, up.width) == (24.0, 3, 16, 32)
    second = up.frame_at(1 / 24)
    assert second.shape == (16, 32, 3) and second.dtype == np.uint8
    assert np.array_equal(second, upscale_frame(frames[1], 16, 32))
    flat = np.full((4, 4, 3), 77, np.uint8)
    assert np.all(upscale_frame(flat, 8, 8) == 77)  # bicubic keeps a constant image


def test_anchor_image_is_every_chunks_reference_and_the_colour_reference():
    frames = np.zeros((10, 16, 16, 3), np.uint8)
    anchor = torch.full((3, 16, 16), 0.5)
    refs = VideoReferences(FrameSequence(frames, 25.0), (16, 16), with_source_frames=True, anchor_image=anchor)
    plan = ChunkPlan(10, 9, 5)
    for chunk in plan.chunks():
        assert torch.equal(refs.reference_for(chunk, 25.0), anchor)
        assert refs.source_frames_for(chunk, 25.0).min().item() == -1.0  # the video still gives the windows
    assert torch.equal(refs.colour_reference(), anchor)


def test_refine_keeps_frames_fps_and_soundtrack_at_twice_the_size(models, inputs, low_res, tmp_path):
    out = tmp_path / "hr.mp4"
    result = refine_video(low_res, inputs / "face.png", out=out, models=models, strength=0.6, **FAST)
    lr, hr = probe(low_res), probe(out)
    assert (result.width, result.height, result.frames) == (32, 32, 24)
    assert hr[:4] == (24, 24.0, 32, 32) and lr[:4] == (24, 24.0, 16, 16)
    assert hr[4] == pytest.approx(lr[4], abs=0.03)


def test_refine_frames_in_memory_starts_on_the_anchor_and_resumes(models, inputs, tmp_path):
    frames = torch.rand(20, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    anchor = torch.full((3, 32, 32), 0.4)
    common = dict(audio=inputs / "a.wav", fps=20.0, models=models, strength=0.5, colour_strength=0.0, **FAST)
    straight = refine_video(frames, anchor, **common)
    assert straight.images.shape == (20, 32, 32, 3)

    def crash(event):
        if event.kind == "chunk" and event.chunk == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        refine_video(frames, anchor, job_dir=tmp_path / "job", progress=crash, **common)
    resumed = refine_video(frames, anchor, job_dir=tmp_path / "job", resume=True, **common)
    assert resumed.replayed_chunks == 1 and torch.equal(resumed.images, straight.images)
    other = refine_video(frames, torch.full((3, 32, 32), -0.4), **common)
    assert not torch.equal(other.images[0], straight.images[0])  # the anchor is the first pinned latent


def test_refine_explains_bad_calls(models, inputs):
    frames = torch.rand(4, 16, 16, 3)
    with pytest.raises(ValueError, match="need fps"):
        refine_video(frames, inputs / "face.png", audio=inputs / "a.wav", models=models)
    with pytest.raises(ValueError, match="carry no soundtrack"):
        refine_video(frames, inputs / "face.png", fps=25.0, models=models)
    with pytest.raises(ValueError, match="strength must be in"):
        refine_video(frames, inputs / "face.png", fps=25.0, strength=1.0, models=models)
    with pytest.raises(ValueError, match="sets size itself"):
        refine_video(frames, inputs / "face.png", fps=25.0, size="32x32", models=models)
    with pytest.raises(ValueError, match="anchor_image replaces"):
        generate(image=inputs / "face.png", anchor_image=inputs / "face.png", audio=inputs / "a.wav", models=models)
