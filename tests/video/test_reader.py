"""Lazy video reading by time: fps, duration, the frame shown at t (forward, backward, past the end); audio."""

from __future__ import annotations

import pytest

from talkgen_core.audio import load_audio
from talkgen_core.video.reader import VideoReader
from video.coded_video import decode_index, write_coded_video


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_coded_video(tmp_path_factory.mktemp("src") / "src30.mp4", frames=90, fps=30, audio_seconds=3.0)


def test_metadata(source):
    with VideoReader(source) as reader:
        assert reader.fps == 30 and reader.frame_count == 90
        assert reader.duration == pytest.approx(3.0, abs=0.05)
        assert (reader.width, reader.height) == (64, 64)


def test_frame_at_time_forward_backward_and_past_the_end(source):
    with VideoReader(source, cache_frames=8) as reader:
        times = [0.0, 0.5, 1.0 / 30 * 7 + 0.001, 2.88, 0.2, 2.99, 10.0, 0.0]
        want = [0, 15, 7, 86, 6, 89, 89, 0]
        got = [decode_index(reader.frame_at(t)) for t in times]
        assert got == want
        assert [reader.frame_index_at(t) for t in (0.0, 2.88, 10.0)] == [0, 86, 89]


def test_iter_frames_and_audio(source):
    with VideoReader(source) as reader:
        indices = [decode_index(image) for _, image in reader.iter_frames()]
    assert indices == list(range(90))
    audio = load_audio(str(source))
    assert audio.ndim == 1 and abs(audio.shape[0] / 16000 - 3.0) < 0.05


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        VideoReader("nope.mp4")
