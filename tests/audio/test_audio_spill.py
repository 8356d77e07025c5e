"""Audio on disk (``spill.py``): every step done block by block gives bit for bit what the in-memory path gives."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from audio.audio_signals import speech_like, write_wav
from talkgen_core.audio import arrange_speakers, encode_speech, load_voice
from talkgen_core.audio.encode import encode_speech_to_disk
from talkgen_core.audio.load import spill_voice
from talkgen_core.audio.loudness import normalize_loudness
from talkgen_core.audio.spill import SpilledSamples, SpilledStack, SpillRows
from talkgen_core.audio.speakers import arrange_speakers_on_disk
from talkgen_core.sampling.jobdir import hash_inputs


def spilled(x: torch.Tensor | np.ndarray) -> SpillRows:
    rows = SpillRows(tuple(torch.as_tensor(x).shape[1:]))
    rows.append(x)
    return rows


def test_rows_come_back_as_written_from_a_file_without_a_name(tmp_path):
    x = torch.randn(1000, 3, 2)
    rows = SpillRows((3, 2), folder=tmp_path)
    rows.append(x[:400])
    rows.append(x[400:])
    assert rows.shape == (1000, 3, 2) and rows.ndim == 3 and len(rows) == 1000
    assert torch.equal(rows[:], x) and torch.equal(rows[123:456], x[123:456]) and rows[990:2000].shape[0] == 10
    assert torch.equal(torch.cat(list(rows.blocks())), x)
    assert os.listdir(tmp_path) == []  # unlinked at once: nothing to find, follow or leave behind
    with pytest.raises(ValueError, match=r"rows must be \[n, 3, 2\]"):
        rows.append(torch.zeros(4, 2, 3))
    with pytest.raises(TypeError, match="contiguous row ranges"):
        rows[::2]


def test_a_stack_on_disk_hashes_as_its_tensor():
    tracks = torch.randn(2, 5000)
    assert hash_inputs([SpilledStack([spilled(t) for t in tracks])]) == hash_inputs([tracks])


def test_samples_on_disk_read_as_channels_by_samples():
    x = torch.randn(3000, 2)  # [S, C], as decoded
    samples = SpilledSamples(spilled(x))
    assert samples.shape == (2, 3000) and torch.equal(samples[:, 10:20], x[10:20].T)
    assert torch.equal(torch.cat(list(samples.blocks()), 1), x.T)


@pytest.mark.parametrize("seconds, window_s", [(3.0, 60.0), (14.3, 4.0)])
def test_features_on_disk_equal_the_in_memory_encoding(tiny_encoder, seconds, window_s):
    wave = torch.from_numpy(speech_like(seconds))
    expected = encode_speech(tiny_encoder, wave, window_seconds=window_s, overlap_seconds=1.0)
    from_ram = encode_speech_to_disk(tiny_encoder, wave, window_seconds=window_s, overlap_seconds=1.0)
    from_disk = encode_speech_to_disk(tiny_encoder, spilled(wave), window_seconds=window_s, overlap_seconds=1.0)
    assert torch.equal(from_ram[:], expected) and torch.equal(from_disk[:], expected)


@pytest.mark.parametrize("gain", [1.0, 40.0])  # 40x: the soft limiter and make-up gain run
def test_loudness_on_disk_equals_in_memory(gain):
    x = (gain * speech_like(6.0)).astype(np.float32)
    in_ram, on_disk = normalize_loudness(x, 16000, -23.0), normalize_loudness(spilled(x), 16000, -23.0)
    assert (on_disk.gain_db, on_disk.limited) == (in_ram.gain_db, in_ram.limited)
    assert np.array_equal(on_disk.samples[:].numpy(), in_ram.samples)


def test_a_voice_on_disk_equals_the_loaded_voice(tmp_path):
    left, right = speech_like(7.0, 44100, seed=1), speech_like(7.0, 44100, seed=2)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], 1), 44100)
    in_ram, on_disk = load_voice(path), spill_voice(path)
    assert isinstance(on_disk.waveform, SpillRows) and isinstance(on_disk.soundtrack.samples, SpilledSamples)
    assert torch.equal(on_disk.waveform[:], in_ram.waveform)
    assert on_disk.soundtrack.sample_rate == in_ram.soundtrack.sample_rate == 44100
    assert torch.equal(on_disk.soundtrack.samples[:, :], in_ram.soundtrack.samples)


def test_speakers_on_disk_equal_the_in_memory_layout():
    loud, quiet = torch.from_numpy(1.8 * speech_like(2.0, seed=3)), torch.from_numpy(speech_like(1.5, seed=4))
    for mode, starts in (("para", None), ("add", None), ("timeline", [0.0, 0.5])):
        in_ram = arrange_speakers([loud, quiet, None], mode, starts_seconds=starts and [*starts, 0.0], fps=25.0)
        on_disk = arrange_speakers_on_disk([spilled(loud), quiet, None], mode,
                                           starts_seconds=starts and [*starts, 0.0], fps=25.0)
        assert (on_disk.starts, on_disk.lengths, on_disk.num_samples) == (in_ram.starts, in_ram.lengths,
                                                                           in_ram.num_samples)
        assert torch.equal(torch.stack([t[:] for t in on_disk.tracks]), in_ram.tracks)
        assert torch.equal(on_disk.mix[:], in_ram.mix)
    assert float(in_ram.tracks.sum(0).abs().max()) > 1.0  # the soft limiter ran on the last layout's mix
    assert hash_inputs([on_disk.tracks]) == hash_inputs([in_ram.tracks])
