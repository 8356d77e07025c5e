"""Per-frame audio windows: offsets -2..+2, edge repetition, absolute indexing, the official tail mirror."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.audio import chunk_audio_windows, frame_windows
from talkgen_core.audio.spill import SpillRows


def ramp_features(num_frames: int, layers: int = 3, dim: int = 2) -> torch.Tensor:
    """[T, L, D] whose every entry equals its frame index: windows can be read as frame numbers."""
    return torch.arange(num_frames, dtype=torch.float32)[:, None, None].expand(num_frames, layers, dim).clone()


def frames_of(windows: torch.Tensor) -> list[list[int]]:
    return windows[:, :, 0, 0].long().tolist()


def test_offsets_and_start_edge_repetition():
    w = frame_windows(ramp_features(10), 0, 4)
    assert w.shape == (4, 5, 3, 2)
    assert frames_of(w) == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [1, 2, 3, 4, 5]]


def test_inside_chunk_end_edge_clamps_like_the_official_clamp():
    w = frame_windows(ramp_features(10), 6, 4)  # ends exactly at the audio end: no extension
    assert frames_of(w)[-2:] == [[6, 7, 8, 9, 9], [7, 8, 9, 9, 9]]


def test_chunks_by_absolute_index_equal_slices_of_one_full_pass():
    feats = torch.randn(300, 4, 8)
    full = frame_windows(feats, 0, 300)
    for start in (0, 72, 144, 216):
        torch.testing.assert_close(frame_windows(feats, start, 81)[: min(81, 300 - start)],
                                   full[start:start + 81][: min(81, 300 - start)])


def test_tail_is_the_official_reflection_and_the_trim_is_reported():
    # official: when [start, start + 81) passes T, append flip(last end - T + 3 frames)
    feats = ramp_features(200)
    start, length = 144, 81  # end 225 > 200
    chunk = chunk_audio_windows(feats, start, length)
    assert (chunk.audio_frames, chunk.trim_frames) == (56, 25)
    pad = start + length - 200 + 3
    official = torch.cat([feats, feats[-pad:].flip(0)])
    idx = (torch.arange(start, start + length)[:, None] + torch.arange(-2, 3)[None]).clamp(0, official.shape[0] - 1)
    torch.testing.assert_close(chunk.windows, official[idx])
    assert frames_of(chunk.windows)[55] == [197, 198, 199, 199, 198]  # last audio frame, then the mirror


def test_track_shorter_than_one_chunk_mirrors_back_and_forth():
    feats = ramp_features(30)
    chunk = chunk_audio_windows(feats, 0, 81)
    assert (chunk.audio_frames, chunk.trim_frames) == (30, 51)
    seq = chunk.windows[:, 2, 0, 0].long().tolist()  # the centre frame of every window
    assert seq[:30] == list(range(30))
    assert seq[30:60] == list(range(29, -1, -1))
    assert seq[60:] == list(range(0, 21))


@pytest.mark.parametrize("num_frames", [1, 7, 30, 200])
def test_features_on_disk_give_the_same_windows_reading_only_the_chunk(num_frames, monkeypatch):
    feats = torch.randn(num_frames, 3, 2)
    rows = SpillRows((3, 2))
    rows.append(feats)
    reads = []
    read = SpillRows.__getitem__
    monkeypatch.setattr(SpillRows, "__getitem__", lambda self, key: reads.append(key) or read(self, key))
    for start in range(0, num_frames, max(1, num_frames // 5)):
        for length in (1, 5, 81):
            assert torch.equal(frame_windows(rows, start, length), frame_windows(feats, start, length))
            span = reads[-1].stop - reads[-1].start
            assert span <= min(num_frames, length + 4)  # the chunk's rows and their neighbours, not the track


def test_several_speakers_are_windowed_alike():
    feats = torch.stack([ramp_features(100), -ramp_features(100)])  # [P, T, L, D]
    chunk = chunk_audio_windows(feats, 72, 81)
    assert chunk.windows.shape == (2, 81, 5, 3, 2) and chunk.trim_frames == 53
    torch.testing.assert_close(chunk.windows[1], -chunk.windows[0])


def test_out_of_range_chunks_are_refused():
    feats = ramp_features(50)
    with pytest.raises(ValueError, match="starts at frame 50 but the audio has only 50 frames"):
        frame_windows(feats, 50, 81)
    with pytest.raises(ValueError, match="start must be >= 0"):
        frame_windows(feats, -1, 10)
    with pytest.raises(ValueError, match="zero frames"):
        frame_windows(feats[:0], 0, 10)
