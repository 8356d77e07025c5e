"""Decoding through the real decoder: files written by the FFmpeg binary, ComfyUI AUDIO dicts, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from audio.audio_signals import encode_with_ffmpeg, mux_with_video, speech_like, tone, write_wav

from talkgen_core.audio import AudioInputError, decode_audio, load_audio
from talkgen_core.audio.resample import resample

SECONDS = 3.2
SOURCE_RATE = 44100


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A stereo 44.1 kHz speech-like wav (right = half of left) and its expected 16 kHz mono downmix."""
    d = tmp_path_factory.mktemp("media")
    x = speech_like(SECONDS, SOURCE_RATE, seed=3)
    write_wav(d / "s.wav", np.stack([x, 0.5 * x], axis=1), SOURCE_RATE)
    expected = resample(0.75 * x, SOURCE_RATE, 16000)
    return d, expected


FILE_CASES = {
    "s.flac": (),
    "s.mp3": ("-b:a", "128k"),
    "s.m4a": ("-c:a", "aac"),
    "s.ogg": ("-c:a", "libvorbis"),
    "s.opus": ("-c:a", "libopus"),
}
VIDEO_CASES = {"v.mp4": ("-c:a", "aac"), "v.mov": ("-c:a", "aac"), "v.mkv": ("-c:a", "libopus")}


@pytest.mark.parametrize("name", ["s.wav", *FILE_CASES, *VIDEO_CASES])
def test_formats_decode_to_16k_mono_matching_the_source(media, name):
    d, expected = media
    path = d / name
    if name in FILE_CASES:
        encode_with_ffmpeg(d / "s.wav", path, *FILE_CASES[name])
    elif name in VIDEO_CASES:
        mux_with_video(d / "s.wav", path, SECONDS, *VIDEO_CASES[name])
    y = load_audio(path, target_lufs=None)
    assert y.dtype == torch.float32 and y.ndim == 1
    assert abs(y.numel() - SECONDS * 16000) <= 0.01 * 16000  # AAC may add < 10 ms of padding
    n = min(y.numel(), expected.size)
    corr = np.corrcoef(y.numpy()[:n], expected[:n])[0, 1]
    lossless = name in ("s.wav", "s.flac")
    assert corr > (0.99999 if lossless else 0.99), corr  # same timing: no offset from codec priming
    rms_ratio = np.sqrt(np.mean(y.numpy()[:n] ** 2) / np.mean(expected[:n] ** 2))
    assert abs(rms_ratio - 1) < (1e-3 if lossless else 0.07)  # channel average, not sum or first channel


def test_wav_path_and_str_agree_and_keep_native_rate(media):
    d, _ = media
    decoded = decode_audio(str(d / "s.wav"))
    assert decoded.sample_rate == SOURCE_RATE and decoded.samples.shape == (2, int(SECONDS * SOURCE_RATE))
    np.testing.assert_allclose(decoded.samples[1], 0.5 * decoded.samples[0], atol=2 / 32767)
    y48 = load_audio(Path(d / "s.wav"), sample_rate=48000, target_lufs=None)
    assert y48.numel() == int(SECONDS * 48000)


def test_comfy_audio_dict_matches_file(media):
    d, _ = media
    decoded = decode_audio(d / "s.wav")
    audio = {"waveform": torch.from_numpy(decoded.samples)[None], "sample_rate": SOURCE_RATE}  # [1, C, S]
    from_dict = load_audio(audio)
    from_file = load_audio(d / "s.wav")
    torch.testing.assert_close(from_dict, from_file, rtol=0, atol=1e-6)


def test_comfy_dict_variants_and_batch_error():
    x = torch.from_numpy(tone(1.0, 22050))
    mono = load_audio({"waveform": x[None, None], "sample_rate": 22050}, target_lufs=None)
    assert mono.numel() == 16000
    torch.testing.assert_close(load_audio({"waveform": x, "sample_rate": 22050}, target_lufs=None), mono)
    with pytest.raises(AudioInputError, match="batch of 2"):
        load_audio({"waveform": torch.zeros(2, 1, 22050), "sample_rate": 22050})
    with pytest.raises(AudioInputError, match="sample_rate"):
        load_audio({"waveform": x[None, None]})


def test_missing_empty_corrupt_and_videoless_files(tmp_path):
    with pytest.raises(AudioInputError, match="not found: .*nope.wav"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioInputError, match="empty.wav is empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.mp3").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(AudioInputError, match="junk.mp3"):
        load_audio(tmp_path / "junk.mp3")
    mute = tmp_path / "mute.mp4"
    from audio.audio_signals import ffmpeg

    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25:d=1", "-c:v", "mpeg4", str(mute))
    with pytest.raises(AudioInputError, match="no audio track"):
        load_audio(mute)


def test_truncated_file_decodes_what_is_there_without_hanging(media, tmp_path):
    d, _ = media
    src = encode_with_ffmpeg(d / "s.wav", tmp_path / "t.mp3", "-b:a", "128k")
    data = src.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2] + np.random.default_rng(1).bytes(2000))
    y = load_audio(cut, target_lufs=None, timeout_s=10.0)
    assert 0.3 * SECONDS * 16000 < y.numel() < 0.8 * SECONDS * 16000


def test_zero_length_nan_and_absurd_rates_are_named_errors():
    with pytest.raises(AudioInputError, match="no samples"):
        load_audio({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000})
    bad = torch.from_numpy(tone(1.0))
    bad[8000] = float("nan")
    with pytest.raises(AudioInputError, match=r"1 NaN/Inf samples \(first at 0.500 s\)"):
        load_audio({"waveform": bad[None, None], "sample_rate": 16000})
    with pytest.raises(AudioInputError, match="5 Hz is outside"):
        load_audio({"waveform": bad[None, None], "sample_rate": 5})
    with pytest.raises(AudioInputError, match="requested sample_rate of 0 Hz"):
        load_audio({"waveform": torch.zeros(1, 1, 100), "sample_rate": 16000}, sample_rate=0)


def test_resampled_tone_keeps_its_frequency():
    y = load_audio({"waveform": torch.from_numpy(tone(2.0, 48000, freq=440.0))[None, None], "sample_rate": 48000},
                   target_lufs=None).numpy()
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak_hz = np.argmax(spectrum) * 16000 / y.size
    assert abs(peak_hz - 440.0) < 1.0
    assert abs(np.abs(y[1000:-1000]).max() - 0.5) < 5e-3
