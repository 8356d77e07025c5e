"""The chunk plan: counts and lengths for real durations, exact output length, end padding, audio windows."""

from __future__ import annotations

import math

import pytest
from talkgen_core.sampling.chunks import ChunkPlan, frames_for_duration, latent_frames


def official_chunk_starts(total: int, chunk: int = 81, context: int = 9) -> list[int]:
    """The official loop: keep going until the current window reaches the end of the audio."""
    starts, start = [], 0
    while True:
        starts.append(start)
        if start + chunk >= total:
            return starts
        start += chunk - context


@pytest.mark.parametrize("seconds", [1.0, 3.3, 10.0, 61.0])
@pytest.mark.parametrize("fps", [24, 25, 30])
def test_chunk_counts_and_lengths(seconds, fps):
    plan = ChunkPlan.for_audio(seconds, fps)
    total = round(seconds * fps)
    assert plan.total_frames == total
    chunks = plan.chunks()
    assert [c.start for c in chunks] == official_chunk_starts(total)
    assert plan.num_chunks == (1 if total <= 81 else 1 + math.ceil((total - 81) / 72))
    assert all(c.length == 81 for c in chunks)
    # the kept frames tile [0, total) exactly, without gaps or overlaps
    covered = [f for c in chunks for f in range(c.output_start, c.output_start + c.output_frames)]
    assert covered == list(range(total))
    assert chunks[0].keep_from == 0 and all(c.keep_from == 9 for c in chunks[1:])
    assert all(c.output_frames > 0 for c in chunks)
    assert chunks[-1].padded_frames == chunks[-1].end - total and all(c.padded_frames == 0 for c in chunks[:-1])
    assert chunks[0].context_latents == 1 and all(c.context_latents == 3 for c in chunks[1:])


def test_known_values():
    assert ChunkPlan(1000).num_chunks == 14  # the official 40 s cap: 1000 frames -> 14 chunks
    assert ChunkPlan.for_audio(61.0, 25).num_chunks == 22
    assert ChunkPlan(175).num_chunks == 3 and ChunkPlan(175).chunk(2).keep_until == 175 - 144
    assert ChunkPlan(81).num_chunks == 1 and ChunkPlan(82).num_chunks == 2
    plan = ChunkPlan(40, chunk_frames=17, context_frames=5)
    assert plan.stride == 12 and [c.start for c in plan.chunks()] == [0, 12, 24]
    assert latent_frames(81) == 21 and latent_frames(9) == 3


def test_exact_length_rounding():
    assert frames_for_duration(7.3, 24) == 175 and frames_for_duration(7.3, 30) == 219
    assert frames_for_duration(1.0, 29.97) == 30
    with pytest.raises(ValueError, match="duration"):
        frames_for_duration(0.0, 25)
    with pytest.raises(ValueError, match="shorter than one frame"):
        frames_for_duration(0.001, 25)


@pytest.mark.parametrize("chunk, context", [(80, 9), (81, 8), (9, 9), (5, 9)])
def test_invalid_plans_are_explained(chunk, context):
    with pytest.raises(ValueError, match="4n\\+1|smaller"):
        ChunkPlan(100, chunk, context)

