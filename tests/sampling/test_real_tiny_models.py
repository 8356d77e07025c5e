"""The chunk loop on the real tiny DiT and VAE: one streamed chunk equals a hand-built run; exact resume."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from talkgen_core.models import build_dit, build_vae
from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.sampling.guidance import GuidanceConfig, GuidedVelocity
from talkgen_core.sampling.jobdir import JobDir, chunk_seed
from talkgen_core.sampling.references import StillReference
from talkgen_core.sampling.schedules import flow_timesteps
from talkgen_core.sampling.solvers import euler
from talkgen_core.sampling.streaming import StreamConditioning, StreamingSampler, StreamSettings, StreamState
from talkgen_core.sampling.wrappers import ChunkConditioning, DiTVelocity, pin_leading_frames
from talkgen_core.video.writer import FrameCollector

PLAN = ChunkPlan(30, chunk_frames=17, context_frames=5)
SETTINGS = StreamSettings(steps=2, guidance=GuidanceConfig(2.0, 3.0), colour_strength=0.5)


@pytest.fixture(scope="module")
def parts():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dit, vae = build_dit("tiny", seed=0).eval(), build_vae("tiny")
        g = torch.Generator().manual_seed(1)
        image = torch.rand(3, 16, 16, generator=g) * 2 - 1
        features = torch.randn(PLAN.total_frames, dit.config.audio_layers, dit.config.audio_dim, generator=g)
        context = torch.randn(1, 3, dit.config.text_dim, generator=g)
    return dit, vae, image, features, context


def sampler_for(parts, settings: StreamSettings = SETTINGS) -> StreamingSampler:
    dit, vae, image, features, context = parts
    return StreamingSampler(dit, vae, PLAN, 25, StillReference(image, (16, 16)),
                            StreamConditioning([features], context), settings)


def test_first_streamed_chunk_equals_a_hand_built_run(parts):
    dit, vae, image, features, context = parts
    streamed = sampler_for(parts).sample_chunk(PLAN.chunk(0), StreamState())

    clip = torch.cat([image[None, :, None], torch.zeros(1, 3, 16, 16, 16)], dim=2)  # reference + grey frames
    latent = vae.encode(clip)  # one pass, not streamed
    mask = torch.zeros(1, 4, latent.shape[2], 2, 2)
    mask[:, :, 0] = 1
    from talkgen_core.audio import frame_windows

    audio = frame_windows(features, 0, 17)[None, None]
    chunk = ChunkConditioning(cond=torch.cat([mask, latent], 1), context=context, audio=audio)
    clean = latent[:, :, :1]
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(chunk_seed(SETTINGS.seed, 0)))
    noise[:, :, :1] = clean

    def pin(info):
        info.x[:, :, :1] = clean

    with torch.no_grad():
        model = pin_leading_frames(GuidedVelocity(DiTVelocity(dit, chunk), SETTINGS.guidance), clean)
        by_hand = euler(model, noise, flow_timesteps(SETTINGS.steps, SETTINGS.shift), callback=pin)
    torch.testing.assert_close(streamed, by_hand, atol=1e-5, rtol=1e-5)


def test_context_hand_off_and_resume_are_exact(parts, tmp_path):
    straight = FrameCollector()
    sampler_for(parts).run(straight)

    def crash(event):
        if event.kind == "chunk" and event.chunk == 0:
            raise RuntimeError("simulated crash")

    job = JobDir(tmp_path, SETTINGS.to_dict(), "x", PLAN.num_chunks)
    with pytest.raises(RuntimeError, match="simulated"):
        sampler_for(parts).run(FrameCollector(), job=job, progress=crash)
    resumed = FrameCollector()
    job = JobDir(tmp_path, SETTINGS.to_dict(), "x", PLAN.num_chunks, resume=True)
    sampler_for(parts).run(resumed, job=job)
    assert torch.equal(resumed.frames(), straight.frames()) and resumed.frames_written == 30
    latents = [job.load_chunk(i) for i in range(PLAN.num_chunks)]
    for prev, cur in zip(latents, latents[1:]):
        assert torch.equal(cur[:, :, :2], prev[:, :, -2:])


@pytest.mark.parametrize("mode", ["latent", "pixel"])
def test_latent_mode_decodes_the_chunks_as_one_stream(parts, tmp_path, mode):
    """Latent context: the decoder's history carries over chunks, so the output is the one-pass decode of the
    whole latent video (no VAE seam); pixel context decodes every chunk as a new stream."""
    vae = parts[1]
    settings = dataclasses.replace(SETTINGS, colour_strength=0.0, context_mode=mode)
    job = JobDir(tmp_path, settings.to_dict(), "x", PLAN.num_chunks)
    written = FrameCollector()
    sampler_for(parts, settings).run(written, job=job)
    latents = [job.load_chunk(i) for i in range(PLAN.num_chunks)]
    with torch.no_grad():
        video = torch.cat([latents[0]] + [c[:, :, 2:] for c in latents[1:]], dim=2)
        whole = vae.decode(video)[0].transpose(0, 1)[: PLAN.total_frames]
        per_chunk = [vae.decode(c)[0].transpose(0, 1) for c in latents]
    chunked = torch.cat([frames[chunk.keep_from : chunk.keep_until] for chunk, frames in zip(PLAN.chunks(), per_chunk)])
    expected, other = (whole, chunked) if mode == "latent" else (chunked, whole)
    torch.testing.assert_close(written.frames(), expected, atol=1e-5, rtol=1e-5)
    assert (written.frames() - other)[17:].abs().max() > 1e-3  # the two decodes differ after chunk 0
