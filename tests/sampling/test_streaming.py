"""The chunk loop with fake models: exact length, context hand-off, audio by absolute index, conditioning."""

from __future__ import annotations

import pytest
import torch

from sampling.streaming_fakes import FakeDiT, FakeVAE
from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.sampling.guidance import GuidanceConfig
from talkgen_core.sampling.jobdir import JobDir
from talkgen_core.sampling.references import PerChunkReferences, StillReference
from talkgen_core.sampling.streaming import (
    StreamConditioning, StreamingSampler, StreamSettings, StreamState, encode_reference_condition, first_frame_mask,
)
from talkgen_core.video.writer import FrameCollector

SIZE = (16, 24)  # (H, W) pixels -> 2 x 3 latents


def reference_image(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, *SIZE, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


def index_features(frames: int) -> list[torch.Tensor]:
    """One speaker whose feature at frame i is i, so outputs reveal which audio frames were used."""
    return [torch.arange(frames, dtype=torch.float32).view(frames, 1, 1)]


def make_sampler(plan: ChunkPlan, fps: float = 25.0, references=None, **settings) -> StreamingSampler:
    settings = {"steps": 2, "colour_strength": 0.0, "guidance": GuidanceConfig(1.0, 1.0), **settings}
    return StreamingSampler(
        FakeDiT(), FakeVAE(), plan, fps, references or StillReference(reference_image(), SIZE),
        StreamConditioning(index_features(plan.total_frames), torch.zeros(1, 2, 8)), StreamSettings(**settings),
    )


def run_with_job(sampler: StreamingSampler, path, resume: bool = False) -> tuple[FrameCollector, JobDir]:
    job = JobDir(path, {"s": sampler.settings.to_dict()}, "inputs", sampler.plan.num_chunks, resume=resume)
    sink = FrameCollector()
    sampler.run(sink, job=job)
    return sink, job


@pytest.mark.parametrize("seconds, fps", [(1.0, 24), (3.3, 25), (7.3, 30), (4.0, 30)])
def test_output_has_exactly_round_seconds_times_fps_frames(seconds, fps):
    plan = ChunkPlan.for_audio(seconds, fps, chunk_frames=17, context_frames=5)
    sink = FrameCollector()
    result = make_sampler(plan, fps).run(sink)
    assert sink.frames().shape == (round(seconds * fps), 3, *SIZE)
    assert result.frames == plan.total_frames and result.chunks == plan.num_chunks


def test_context_latents_equal_the_previous_chunk_tail(tmp_path):
    plan = ChunkPlan(60, chunk_frames=17, context_frames=9)
    sampler = make_sampler(plan, solver="heun", guidance=GuidanceConfig(3.0, 2.0))
    _, job = run_with_job(sampler, tmp_path / "job")
    latents = [job.load_chunk(i) for i in range(plan.num_chunks)]
    ref_latent = FakeVAE().encode(reference_image()[None, :, None])
    assert torch.equal(latents[0][:, :, :1], ref_latent)  # chunk 0: the reference's own latent
    for prev, cur in zip(latents, latents[1:]):
        assert torch.equal(cur[:, :, :3], prev[:, :, -3:])  # 9 context frames = 3 latents, bit-exact


def test_written_frames_are_the_decoded_chunks_without_context(tmp_path):
    plan = ChunkPlan(40, chunk_frames=17, context_frames=5)
    sink, job = run_with_job(make_sampler(plan), tmp_path / "job")
    vae, expected = FakeVAE(), []
    for chunk in plan.chunks():
        frames = vae.decode(job.load_chunk(chunk.index))[0].permute(1, 0, 2, 3)
        expected.append(frames[chunk.keep_from : chunk.keep_until])
    assert torch.equal(sink.frames(), torch.cat(expected))


def test_audio_is_taken_by_absolute_frame_index(tmp_path):
    plan = ChunkPlan(30, chunk_frames=17, context_frames=5)  # starts 0, 12, 24; the last chunk is padded
    _, job = run_with_job(make_sampler(plan), tmp_path / "job")
    ref_latent = FakeVAE().encode(reference_image()[None, :, None])[0, :, 0]  # [z, h, w]
    for chunk in plan.chunks():
        latents = job.load_chunk(chunk.index)[0]
        for j in range(chunk.context_latents, 5):
            frame = chunk.start + 4 * j  # the fake reads the centre window value of frame 4j of the chunk
            source = frame if frame < 30 else 2 * 30 - 1 - frame  # reflected past the audio end
            torch.testing.assert_close(latents[:, j] - ref_latent, torch.full_like(ref_latent, 0.1 * source),
                                       atol=1e-4, rtol=0)


def test_pixel_context_mode_re_encodes_the_decoded_tail(tmp_path):
    plan = ChunkPlan(40, chunk_frames=17, context_frames=5)
    _, job = run_with_job(make_sampler(plan, context_mode="pixel"), tmp_path / "job")
    vae = FakeVAE()
    for i in range(1, plan.num_chunks):
        tail = vae.decode(job.load_chunk(i - 1))[:, :, -5:]
        assert torch.equal(job.load_chunk(i)[:, :, :2], vae.encode(tail))


def test_conditioning_input_is_built_as_officially():
    mask = first_frame_mask(81, 3, 5)
    assert mask.shape == (1, 4, 21, 3, 5)
    assert torch.all(mask[:, :, 0] == 1) and torch.all(mask[:, :, 1:] == 0)
    ref = reference_image()
    cond = encode_reference_condition(FakeVAE(), ref, 17)
    assert cond.shape == (1, 4 + 4, 5, 2, 3)
    torch.testing.assert_close(cond[:, 4:, :1], FakeVAE().encode(ref[None, :, None]))
    assert torch.all(cond[:, 4:, 1:] == 0)  # grey (zero) frames after the reference


def test_reference_per_chunk_and_condition_cache():
    plan = ChunkPlan(40, chunk_frames=17, context_frames=5)
    still = make_sampler(plan)
    still.run(FrameCollector())
    assert still.vae.encode_calls == 1  # one reference: the condition is encoded once
    refs = PerChunkReferences([reference_image(1), reference_image(2)], SIZE)
    per_chunk = make_sampler(plan, references=refs)
    per_chunk.run(FrameCollector())
    assert per_chunk.vae.encode_calls == 2  # chunk 0 and chunk 1 differ; later chunks reuse the last image


def test_progress_events_and_eta():
    plan = ChunkPlan(40, chunk_frames=17, context_frames=5)
    events = []
    make_sampler(plan, steps=3).run(FrameCollector(), progress=events.append)
    steps = [e for e in events if e.kind == "step"]
    chunks = [e for e in events if e.kind == "chunk"]
    assert len(steps) == 3 * plan.num_chunks and len(chunks) == plan.num_chunks
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in steps)
    assert chunks[-1].eta_s == 0 and chunks[-1].frames_written == 40


def test_settings_are_validated():
    with pytest.raises(ValueError, match="solver"):
        StreamSettings(solver="nope")
    with pytest.raises(ValueError, match="context_mode"):
        StreamSettings(context_mode="pixels")
    with pytest.raises(ValueError, match="sdedit"):
        make_sampler(ChunkPlan(20, 17, 5), sdedit_strength=0.5)
    with pytest.raises(ValueError, match="plan covers 21 frames"):
        StreamingSampler(FakeDiT(), FakeVAE(), ChunkPlan(21, 17, 5), 25.0, StillReference(reference_image(), SIZE),
                         StreamConditioning(index_features(20), torch.zeros(1, 2, 8)), StreamSettings())


def test_end_keyframe_pins_the_last_latent_to_the_reference():
    """The rigid first+last baseline: every chunk ends exactly on the reference image's latent."""
    plan = ChunkPlan(120, 41, 9)
    chunk = plan.chunks()[0]
    reference_latent = encode_reference_condition(FakeVAE(), reference_image(), chunk.length)[:, 4:, :1]
    pinned = make_sampler(plan, end_keyframe=True).sample_chunk(chunk, StreamState())
    free = make_sampler(plan).sample_chunk(chunk, StreamState())
    assert torch.equal(pinned[:, :, -1:], reference_latent)
    assert not torch.equal(free[:, :, -1:], reference_latent)


def test_chunk_events_carry_the_newest_frame_as_a_preview():
    plan = ChunkPlan(60, 17, 9)
    sampler = make_sampler(plan)
    sink, events = FrameCollector(), []
    sampler.run(sink, progress=events.append)
    chunk_events = [e for e in events if e.kind == "chunk"]
    assert len(chunk_events) == plan.num_chunks and all(e.preview is not None for e in chunk_events)
    assert all(e.preview is None for e in events if e.kind == "step")
    assert torch.equal(chunk_events[-1].preview, sink.frames()[-1])
