"""Reference frames per chunk: still, per chunk, keyframes by time, and video dubbing at the right source times."""

from __future__ import annotations

import math

import pytest
import torch

from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.sampling.references import (
    KeyframeReferences, PerChunkReferences, StillReference, VideoReferences, resize_and_crop,
)
from video.coded_video import coded_frame, decode_index, write_coded_video


@pytest.fixture(scope="module")
def source30(tmp_path_factory):
    return write_coded_video(tmp_path_factory.mktemp("v2v") / "src30.mp4", frames=210, fps=30)


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_dubbing_references_fall_at_the_chunk_start_time_of_a_30fps_source(source30, fps):
    plan = ChunkPlan(round(9.0 * fps))
    refs = VideoReferences(source30, size=(64, 64))
    for chunk in plan.chunks():
        want = min(209, math.floor(chunk.start / fps * 30 + 1e-6))  # frame shown at the chunk's start time
        assert decode_index(refs.reference_for(chunk, fps)) == want, chunk
    assert decode_index(refs.colour_reference()) == 0
    refs.close()


def test_anchor_policies_and_sdedit_windows(source30):
    plan = ChunkPlan(200, chunk_frames=17, context_frames=5)
    chunk = plan.chunk(2)  # frames 24..40 at 25 fps
    first_new = VideoReferences(source30, (64, 64), anchor="first_new_frame")
    assert decode_index(first_new.reference_for(chunk, 25)) == math.floor(29 / 25 * 30)
    middle = VideoReferences(source30, (64, 64), anchor="chunk_middle", with_source_frames=True)
    assert decode_index(middle.reference_for(chunk, 25)) == math.floor(32 / 25 * 30 + 1e-6)
    window = middle.source_frames_for(chunk, 25)
    assert window.shape == (1, 3, 17, 64, 64)
    want = [math.floor((24 + i) / 25 * 30 + 1e-6) for i in range(17)]
    assert [decode_index(window[0, :, i]) for i in range(17)] == want
    assert first_new.source_frames_for(chunk, 25) is None
    with pytest.raises(ValueError, match="anchor"):
        VideoReferences(source30, (64, 64), anchor="end")


def test_image_reference_providers():
    images = [coded_frame(i) for i in (3, 5, 9)]
    plan = ChunkPlan(290)  # chunk starts 0, 72, 144, 216 frames = 0, 2.88, 5.76, 8.64 s at 25 fps
    still = StillReference(images[0], (32, 32))
    assert all(decode_index(still.reference_for(c, 25)) == 3 for c in plan.chunks())
    per_chunk = PerChunkReferences(images, (32, 32))
    assert [decode_index(per_chunk.reference_for(c, 25)) for c in plan.chunks()] == [3, 5, 9, 9]
    keys = KeyframeReferences(images, [0.0, 3.0, 6.0], (32, 32))
    assert [decode_index(keys.reference_for(c, 25)) for c in plan.chunks()] == [3, 3, 5, 9]
    nearest = KeyframeReferences(images, [0.0, 3.0, 6.0], (32, 32), policy="nearest")
    assert [decode_index(nearest.reference_for(c, 25)) for c in plan.chunks()] == [3, 5, 9, 9]


def test_resize_and_centre_crop():
    wide = torch.zeros(3, 20, 40)
    wide[:, :, 10:30] = 1.0  # a bright centre band, half the width
    out = resize_and_crop(wide, 16, 16)
    assert out.shape == (3, 16, 16) and out.min() > 0.9  # the crop keeps only the centre
    assert resize_and_crop(torch.zeros(2, 3, 8, 8), 16, 32).shape == (2, 3, 16, 32)


def test_an_unreadable_image_file_gets_a_clear_error(tmp_path):
    from talkgen_core.sampling.references import to_pixels

    bad = tmp_path / "face.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="face.png could not be read"):
        to_pixels(bad)
