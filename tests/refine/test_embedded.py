"""The embedded refiner's route on a small refiner: size, frames and soundtrack kept, the prefix anchor in every
chunk, bit-exact resume, its condition, its errors, and the files its training run writes."""

from __future__ import annotations

import pytest
import torch

from helpers.demo_fixtures import models, inputs  # noqa: F401 (pytest fixtures)
from talkgen_core.models.configs import variant
from talkgen_core.models.dit import build_dit
from talkgen_core.pipeline import Models, generate
from talkgen_core.refine import refine_video
from talkgen_core.refine.embedded import EmbeddedRefiner, load_embedded_refiner, refiner_files
from talkgen_core.refine.landmark_model import LandmarkNet
from talkgen_core.synth.landmarks import LANDMARKS
from talkgen_core.train.refiner import SMOKE_REFINER, train_refiner

INFO = {"scale": 2, "chunk_frames": 17, "context_frames": 5, "pose_sigma": 1.5, "landmarks": list(LANDMARKS)}
FAST = {"steps": 2, "chunk_frames": 17, "context_frames": 5}


@pytest.fixture(scope="module")
def refiner_models(models):
    """A seeded random refiner (tiny DiT, pose encoder switched on) with the demo's VAE and audio encoder."""
    torch.manual_seed(0)
    dit = build_dit(variant("tiny", audio_dim=64), seed=0)  # the demo audio encoder's width
    refiner = EmbeddedRefiner(dit, LandmarkNet(len(LANDMARKS), 8), INFO)
    torch.nn.init.normal_(refiner.pose.out.weight, std=0.1, generator=torch.Generator().manual_seed(1))
    return Models(refiner.eval(), models.vae, models.wav2vec2, {"dit": "test-refiner"}, is_demo=True,
                  sampling_preset="demo-refiner")


@pytest.fixture(scope="module")
def low_frames():
    return torch.rand(28, 16, 16, 3, generator=torch.Generator().manual_seed(1))  # [T, H, W, 3] in [0, 1]


def test_embedded_refine_doubles_the_size_and_keeps_frames_fps_and_soundtrack(refiner_models, models, inputs,
                                                                              tmp_path):
    low = tmp_path / "low.mp4"
    generate(image=inputs / "face.png", audio=inputs / "a.wav", out=low, fps=24, size="16x16", models=models, **FAST)
    result = refine_video(low, inputs / "face.png", out=tmp_path / "high.mp4", models=refiner_models, **FAST)
    assert (result.width, result.height, result.frames, result.fps) == (32, 32, 24, 24.0)
    assert result.audio_seconds == pytest.approx(1.0, abs=0.03)


def test_every_chunk_attends_to_the_reference_latent_as_its_prefix(refiner_models, inputs, low_frames):
    anchor = torch.full((3, 32, 32), 0.3)
    anchor[:, 8:20, 10:22] = -0.5
    seen = []
    hook = refiner_models.dit.dit.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, :, 0].clone()))
    try:
        result = refine_video(low_frames, anchor, audio=inputs / "a.wav", fps=28.0, models=refiner_models,
                              colour_strength=0.0, **FAST)
    finally:
        hook.remove()
    assert result.chunks == 2 and len(seen) == 2 * FAST["steps"]
    with torch.no_grad():
        prefix = refiner_models.vae.encode(anchor[None, :, None])[:, :, 0]
    assert all(torch.equal(p, prefix) for p in seen)  # the noise-free prefix, no pose added, in every call


def test_embedded_refine_resumes_bit_exact(refiner_models, inputs, low_frames, tmp_path):
    anchor = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(6)) * 2 - 1
    common = dict(audio=inputs / "a.wav", fps=28.0, models=refiner_models, condition_noise=0.3, colour_strength=0.0,
                  **FAST)
    straight = refine_video(low_frames, anchor, **common)

    def crash(event):
        if event.kind == "chunk" and event.chunk == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        refine_video(low_frames, anchor, job_dir=tmp_path / "job", progress=crash, **common)
    resumed = refine_video(low_frames, anchor, job_dir=tmp_path / "job", resume=True, **common)
    assert resumed.replayed_chunks == 1 and torch.equal(resumed.images, straight.images)
    other = refine_video(low_frames, anchor, **{**common, "condition_noise": 0.0})
    assert not torch.equal(other.images, straight.images)  # the condition's noise level reaches the refiner


def test_chunk_condition_is_seeded_and_places_landmarks_at_the_output_size(refiner_models):
    refiner, vae = refiner_models.dit, refiner_models.vae
    source = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    prefix = torch.randn(1, 16, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cond = refiner.chunk_condition(vae, source, prefix, 0.2, torch.Generator().manual_seed(4))
        again = refiner.chunk_condition(vae, source, prefix, 0.2, torch.Generator().manual_seed(4))
        other = refiner.chunk_condition(vae, source, prefix, 0.2, torch.Generator().manual_seed(5))
    assert cond.shape == (1, 4 + 16 + len(LANDMARKS) * 64, 4, 4, 4) and torch.equal(cond, again)
    assert not torch.equal(cond[:, 4:20, 1:], other[:, 4:20, 1:]) and torch.equal(cond[:, 4:20, :1], prefix)
    heat = torch.zeros(1, len(LANDMARKS), 16, 16)
    heat[0, 0, 5, 7] = 1.0  # landmark 0 at low-resolution pixel (row 5, col 7)
    net = refiner.landmark_net
    with torch.no_grad():
        forward, net.forward = net.forward, lambda frames: heat.expand(frames.shape[0], -1, -1, -1)
        try:
            points = refiner.landmarks_of(torch.zeros(3, 3, 16, 16))
        finally:
            net.forward = forward
    assert points.shape == (3, len(LANDMARKS), 2) and points[0, 0].tolist() == [14.5, 10.5]


def test_embedded_route_explains_bad_calls(refiner_models, models, inputs, low_frames):
    with pytest.raises(ValueError, match="trained to lift the size 2x"):
        refine_video(low_frames, inputs / "face.png", audio=inputs / "a.wav", fps=28.0, scale=3.0,
                     models=refiner_models)
    with pytest.raises(ValueError, match="strength or condition_noise"):
        refine_video(low_frames, inputs / "face.png", audio=inputs / "a.wav", fps=28.0, strength=0.5,
                     condition_noise=0.5, models=refiner_models)
    with pytest.raises(ValueError, match="condition_noise and landmarks are the embedded refiner.s"):
        refine_video(low_frames, inputs / "face.png", audio=inputs / "a.wav", fps=28.0, condition_noise=0.5,
                     models=models)
    with pytest.raises(ValueError, match=r"condition_noise \(the embedded refiner's\) must be in"):
        refine_video(low_frames, inputs / "face.png", audio=inputs / "a.wav", fps=28.0, condition_noise=1.0,
                     models=refiner_models)
    with pytest.raises(ValueError, match="needs the embedded refiner"):
        generate(video=inputs / "face.png", audio=inputs / "a.wav", models=models, strategy="refiner", **FAST)
    with pytest.raises(ValueError, match="refines a finished video"):
        generate(image=inputs / "face.png", audio=inputs / "a.wav", models=refiner_models, **FAST)
    with pytest.raises(ValueError, match="unknown strategy"):
        generate(image=inputs / "face.png", audio=inputs / "a.wav", models=models, strategy="refine", **FAST)


def test_training_writes_files_the_refiner_loads(tmp_path):
    with pytest.raises(FileNotFoundError, match="demo-refiner.safetensors"):
        load_embedded_refiner(weights_dir=tmp_path)
    record = train_refiner(SMOKE_REFINER, refiner_files()[0].parent, tmp_path, minutes=0.05)
    assert record.steps["refiner"] >= 1 and record.steps["landmarks"] >= 100
    assert (tmp_path / "demo-refiner.json").is_file()
    refiner = load_embedded_refiner(weights_dir=tmp_path)
    assert refiner.scale == 2 and refiner.info["chunk_frames"] == SMOKE_REFINER.chunk_frames
    assert not refiner.training and not any(p.requires_grad for p in refiner.parameters())


def test_memory_stays_flat_in_the_length_one_window_of_source_frames_per_chunk(refiner_models, inputs, monkeypatch):
    """A longer video reads more chunks, never a larger window, and carries only the prefix and the context."""
    from talkgen_core.sampling.references import VideoReferences
    from talkgen_core.sampling.streaming import StreamingSampler

    windows, carried = [], []
    read = VideoReferences.source_frames_for
    finish = StreamingSampler.finish_chunk

    def reading(self, chunk, fps):
        frames = read(self, chunk, fps)
        windows.append(int(frames.shape[2]))
        return frames

    def finishing(self, chunk, latents, state, sink, check=None):
        finish(self, chunk, latents, state, sink, check)
        carried.append((tuple(state.context_latents.shape), tuple(sorted(state.strategy_state))))

    monkeypatch.setattr(VideoReferences, "source_frames_for", reading)
    monkeypatch.setattr(StreamingSampler, "finish_chunk", finishing)
    chunks = []
    for frames in (28, 80):
        low = torch.rand(frames, 16, 16, 3, generator=torch.Generator().manual_seed(frames))
        chunks.append(refine_video(low, torch.zeros(3, 32, 32), audio=inputs / "a.wav", fps=frames / 1.0,
                                   models=refiner_models, **FAST).chunks)
    assert chunks == [2, 7] and len(windows) == len(carried) == 9 and max(windows) == FAST["chunk_frames"]
    assert set(carried) == {((1, 16, 2, 4, 4), ("refiner_prefix",))}
