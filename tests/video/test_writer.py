"""The streaming mp4 writer: exact frame count, even sizes, audio trimmed/padded to the video; the collector."""

from __future__ import annotations

import av
import pytest
import torch

from talkgen_core.video.writer import FrameCollector, Mp4Writer, frames_to_uint8, mux_audio, write_gif


def probe(path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        info = {"width": video.codec_context.width, "height": video.codec_context.height,
                "fps": float(video.average_rate), "audio": bool(container.streams.audio)}
        if container.streams.audio:
            audio = container.streams.audio[0]
            info["audio_seconds"] = float(audio.duration * audio.time_base)
        info["frames"] = sum(1 for _ in container.decode(video))
    return info


def ramp(frames: int, height: int = 32, width: int = 48) -> torch.Tensor:
    return torch.linspace(-1, 1, frames).view(frames, 1, 1, 1).expand(frames, 3, height, width).contiguous()


@pytest.mark.parametrize("fps, audio_seconds", [(24.0, 3.0), (30.0, 1.0)])
def test_exact_frames_and_audio_cut_or_padded_to_the_video(tmp_path, fps, audio_seconds):
    out = tmp_path / "o.mp4"
    audio = 0.1 * torch.sin(torch.arange(int(audio_seconds * 16000)) / 16000 * 2 * torch.pi * 220)
    writer = Mp4Writer(out, fps=fps, audio=audio, sample_rate=16000)
    for _ in range(3):  # three chunks of 17 frames = 51 frames
        writer.write(ramp(17))
    result = writer.close()
    info = probe(out)
    assert info["frames"] == 51 == result.frames
    assert info["fps"] == fps and info["audio"]
    assert info["audio_seconds"] == pytest.approx(51 / fps, abs=0.05)  # audio follows the video length
    assert not list(tmp_path.glob(".*"))  # temporary files are gone


def test_odd_sizes_are_padded_to_even_and_silent_video(tmp_path):
    out = tmp_path / "odd.mp4"
    writer = Mp4Writer(out, fps=25)
    writer.write(ramp(5, 31, 45))
    writer.close()
    info = probe(out)
    assert (info["width"], info["height"]) == (46, 32) and info["frames"] == 5 and not info["audio"]


def test_writer_errors_are_clear(tmp_path):
    writer = Mp4Writer(tmp_path / "x.mp4", fps=25)
    with pytest.raises(RuntimeError, match="no frames"):
        writer.close()
    writer.write(ramp(2))
    with pytest.raises(ValueError, match="frame size changed"):
        writer.write(ramp(2, 16, 16))
    writer.close()
    with pytest.raises(ValueError, match="fps"):
        Mp4Writer(tmp_path / "y.mp4", fps=0)


def test_collector_and_pixel_conversion():
    collector = FrameCollector()
    collector.write(ramp(3, 4, 4))
    collector.write(ramp(2, 4, 4))
    assert collector.frames().shape == (5, 3, 4, 4) and collector.images().shape == (5, 4, 4, 3)
    assert collector.images().min() >= 0 and collector.images().max() <= 1
    pixels = frames_to_uint8(torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1).expand(3, 3, 1, 1))
    assert pixels[:, 0, 0, 0].tolist() == [0, 128, 255]


def test_mux_audio_replaces_the_soundtrack_of_a_video(tmp_path):
    silent = tmp_path / "silent.mp4"
    writer = Mp4Writer(silent, fps=25)
    writer.write(ramp(50))
    writer.close()
    out = tmp_path / "dubbed.mp4"
    mux_audio(silent, 0.1 * torch.randn(2, 16000), 16000, 2.0, out)  # 1 s of stereo audio padded to 2 s
    info = probe(out)
    assert info["frames"] == 50 and info["audio"] and info["audio_seconds"] == pytest.approx(2.0, abs=0.05)
    with pytest.raises(ValueError, match="differ"):
        mux_audio(out, torch.zeros(100), 16000, 1.0, out)


def test_gif_preview(tmp_path):
    video = tmp_path / "v.mp4"
    writer = Mp4Writer(video, fps=25)
    writer.write(ramp(25))
    writer.close()
    gif = write_gif(video, tmp_path / "p.gif", fps=10, width=24)
    with av.open(str(gif)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert stream.codec_context.width == 24
    assert frames == 10  # 1 s at 10 fps
