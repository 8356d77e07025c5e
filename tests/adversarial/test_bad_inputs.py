"""Bad inputs found when the pack was attacked (issue 13): each gives the right output or a clear error naming
the input, early, and loses no finished work.

Rotated (portrait phone) video, 16-bit and other wide PNG modes, NaN settings / weights / latents, empty masks
and reference batches, late failures (missing image, bad size) and damaged or unloadable weight files.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from helpers.pack_import import import_pack_like_comfyui
from sampling.streaming_fakes import FakeDiT, FakeVAE
from talkgen_core import pipeline
from talkgen_core.cli import main as cli_main
from talkgen_core.conditioning.reference import ReferenceInput
from talkgen_core.conditioning.speaker_masks import parse_strengths, speaker_masks
from talkgen_core.models import build_dit
from talkgen_core.models.checkpoint import CheckpointError, describe_checkpoint, load_dit, load_state_dict_file
from talkgen_core.sampling.chunks import ChunkPlan
from talkgen_core.sampling.guidance import GuidanceConfig
from talkgen_core.sampling.jobdir import JobDir
from talkgen_core.sampling.references import StillReference, to_pixels
from talkgen_core.sampling.streaming import NonFiniteLatents, StreamConditioning, StreamingSampler, StreamSettings
from talkgen_core.validation import SettingsError, settings_problems
from talkgen_core.video.reader import VideoReader
from talkgen_core.video.writer import FrameCollector, Mp4Writer

REPO = Path(__file__).resolve().parents[2]
FACE = REPO / "example_inputs" / "face.png"
SPEECH = REPO / "example_inputs" / "speech.wav"
NAN = float("nan")


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail the test if generate() gets as far as loading a model (the audio is encoded after that)."""

    def refuse(*args, **kwargs):
        raise AssertionError("heavy work started before the inputs were checked")

    monkeypatch.setattr(pipeline, "load_demo_models", refuse)
    monkeypatch.setattr(pipeline, "_speech", refuse)


# ------------------------------------------------------------------------------------------ 1. display rotation
def _landscape_video(path: Path) -> Path:
    """A 64 x 32 (W x H) clip whose left third is white, the rest black: any turn shows."""
    frame = -torch.ones(3, 32, 64)
    frame[:, :, :20] = 1.0
    writer = Mp4Writer(path, fps=10.0, crf=10, preset="ultrafast")
    writer.write(frame[None].repeat(5, 1, 1, 1))
    writer.close()
    return path


def _shown_by_ffmpeg(path: Path, width: int, height: int) -> np.ndarray:
    """The first frame as a player shows it (ffmpeg applies the display matrix when decoding)."""
    raw = subprocess.run([ffmpeg(), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_video_is_read_upright(tmp_path, rotation):
    source = _landscape_video(tmp_path / "landscape.mp4")
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg(), "-v", "error", "-display_rotation", str(rotation), "-i", str(source), "-c", "copy",
                    str(rotated)], check=True)
    with VideoReader(rotated) as reader:
        portrait = rotation % 180 != 0
        assert (reader.width, reader.height) == ((32, 64) if portrait else (64, 32))
        frame = reader.frame_at(0.0)
    shown = _shown_by_ffmpeg(rotated, reader.width, reader.height)
    assert frame.shape == shown.shape
    assert np.abs(frame.astype(float) - shown.astype(float)).mean() < 3.0


# ------------------------------------------------------------------------------------------ 2. image modes
def test_16_bit_grayscale_png_is_not_read_as_white(tmp_path):
    grey = np.asarray(Image.open(FACE).convert("L"), np.uint16)
    Image.fromarray(grey * 257).save(tmp_path / "g16.png")  # what the acceptance check writes: mode I;16
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    pixels = to_pixels(tmp_path / "g16.png")  # [3, H, W] in [-1, 1]
    expected = torch.from_numpy(grey.astype(np.float32) / 255.0 * 2.0 - 1.0)
    assert pixels.shape == (3, *grey.shape)
    torch.testing.assert_close(pixels[0], expected, atol=1e-3, rtol=0)
    assert ((pixels + 1) * 127.5).mean() < 240


def _value(pixels: torch.Tensor) -> list[float]:
    """The image's first pixel in [0, 1], per channel."""
    return [round(float(v), 3) for v in (pixels[:, 0, 0] + 1) / 2]


@pytest.mark.parametrize("mode, value, expected", [
    ("I;16", 32768, [0.5] * 3),
    ("I;16B", 16384, [0.25] * 3),
    ("I", 13107, [0.2] * 3),
    ("F", 0.25, [0.25] * 3),  # floats in [0, 1]
    ("F", 51.0, [0.2] * 3),  # floats in [0, 255]
    ("L", 51, [0.2] * 3),
    ("LA", (0, 0), [1.0] * 3),  # fully transparent black: the white background
    ("RGBA", (255, 0, 0, 255), [1.0, 0.0, 0.0]),
    ("RGBA", (0, 0, 0, 0), [1.0] * 3),
    ("CMYK", (0, 255, 255, 0), [1.0, 0.0, 0.0]),
])  # fmt: skip
def test_every_pil_mode_is_scaled_to_its_range(mode, value, expected):
    image = Image.new(mode, (4, 4), value)
    assert _value(to_pixels(image)) == pytest.approx(expected, abs=2e-3)


def test_palette_image_with_transparency_is_composited():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.info["transparency"] = 0
    assert _value(to_pixels(image)) == [1.0] * 3
    image.info.pop("transparency")
    assert _value(to_pixels(image)) == [0.0] * 3


# ------------------------------------------------------------------------------------------ 3. non-finite values
@pytest.mark.parametrize("name", ["fps", "shift", "text_cfg", "audio_cfg", "colour_strength", "sdedit_strength"])
def test_non_finite_settings_are_refused_by_name(name):
    for bad in (NAN, math.inf):
        problems = settings_problems({name: bad})
        assert len(problems) == 1 and problems[0].startswith(name), problems


def test_nan_audio_cfg_is_refused_before_any_work(no_heavy_work, tmp_path):
    with pytest.raises(SettingsError, match="audio_cfg is nan"):
        pipeline.generate(image=FACE, audio=SPEECH, out=tmp_path / "o.mp4", audio_cfg=NAN)
    assert not (tmp_path / "o.mp4").exists()


def test_cli_fps_nan_is_a_clear_error(no_heavy_work, tmp_path, capsys):
    rc = cli_main(["generate", "--image", str(FACE), "--audio", str(SPEECH), "--out", str(tmp_path / "o.mp4"),
                   "--fps", "nan"])
    assert rc != 0
    assert "fps is nan" in capsys.readouterr().err


def test_nan_speaker_strength_is_refused():
    with pytest.raises(ValueError, match="finite"):
        parse_strengths("1.0, nan", 2)


def test_nan_weights_are_refused_at_load_naming_file_and_key(tmp_path):
    state = {k: v.contiguous() for k, v in build_dit("tiny", seed=5).state_dict().items()}
    state["blocks.1.ffn.0.weight"] = state["blocks.1.ffn.0.weight"].clone()
    state["blocks.1.ffn.0.weight"][3, 4] = NAN
    path = tmp_path / "nan.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"nan\.safetensors: tensor 'blocks\.1\.ffn\.0\.weight'"):
        load_dit(path)
    state["blocks.1.ffn.0.weight"][3, 4] = math.inf
    save_file({k: v.half() for k, v in state.items()}, str(path))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_state_dict_file(path)


def test_non_finite_latents_stop_the_run_at_that_chunk_and_keep_finished_ones(tmp_path):
    size = (16, 24)
    plan = ChunkPlan(40, chunk_frames=17, context_frames=5)
    dit = FakeDiT()
    sampler = StreamingSampler(
        dit, FakeVAE(), plan, 25.0, StillReference(torch.zeros(3, *size), size),
        StreamConditioning([torch.zeros(40, 1, 1)], torch.zeros(1, 2, 8)),
        StreamSettings(steps=2, colour_strength=0.0, guidance=GuidanceConfig(1.0, 1.0)),
    )
    job = JobDir(tmp_path / "job", {"s": 1}, "inputs", plan.num_chunks)

    def break_after_first_chunk(event) -> None:
        if event.kind == "chunk":
            dit.gain.data.fill_(NAN)  # e.g. a NaN guidance scale or a weight that overflows

    sink = FrameCollector()
    with pytest.raises(NonFiniteLatents, match=r"chunk 2/3.*solver step 1/2"):
        sampler.run(sink, job=job, progress=break_after_first_chunk)
    assert job.is_finished(0) and not job.is_finished(1)
    first = plan.chunks()[0]
    assert sink.frames().shape[0] == first.output_frames
    assert torch.isfinite(sink.frames()).all()


# ------------------------------------------------------------------------------------------ 4. empty batches
def test_empty_speaker_masks_name_the_input():
    with pytest.raises(ValueError, match=r"speaker masks have shape \(2, 0, 0\)"):
        speaker_masks(2, masks=torch.zeros(2, 0, 0))


def test_empty_reference_batches_name_the_input(no_heavy_work, tmp_path):
    nodes = import_pack_like_comfyui(tmp_path).NODE_CLASS_MAPPINGS
    for mode in ("single", "per_chunk", "keyframes"):
        with pytest.raises(ValueError, match="image batch is empty"):
            nodes["TalkGenReference"]().build(torch.zeros(0, 8, 8, 3), mode, "0")
    with pytest.raises(ValueError, match="speaker masks"):
        nodes["TalkGenSpeakerMasks"]().build(2, "", masks=torch.zeros(2, 0, 0))
    with pytest.raises(ValueError, match="reference images list is empty"):
        ReferenceInput(images=[])
    with pytest.raises(ValueError, match="images is empty"):
        pipeline.generate(images=[], audio=SPEECH)
    with pytest.raises(ValueError, match=r"H, W > 0"):
        to_pixels(torch.zeros(3, 0, 0))


# ------------------------------------------------------------------------------------------ 5. early checks
def test_missing_image_is_reported_before_any_work(no_heavy_work, tmp_path):
    with pytest.raises(FileNotFoundError, match="reference image not found"):
        pipeline.generate(image=tmp_path / "nope.png", audio=SPEECH, out=tmp_path / "o.mp4")


def test_undecodable_image_and_video_are_reported_before_any_work(no_heavy_work, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"bad\.png could not be read"):
        pipeline.generate(image=tmp_path / "bad.png", audio=SPEECH)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"bad\.mp4"):
        pipeline.generate(video=tmp_path / "bad.mp4", audio=SPEECH)


@pytest.mark.parametrize("size", ["12x7", "huge", "0x0"])
def test_bad_size_is_reported_before_any_work(no_heavy_work, size):
    with pytest.raises(SettingsError, match="size"):
        pipeline.generate(image=FACE, audio=SPEECH, size=size)


def test_cli_reports_a_missing_image_before_loading_models(no_heavy_work, tmp_path, capsys):
    rc = cli_main(["generate", "--image", str(tmp_path / "nope.png"), "--audio", str(SPEECH),
                   "--out", str(tmp_path / "o.mp4"), "--size", "640x480"])
    assert rc != 0 and "nope.png" in capsys.readouterr().err


def test_good_settings_have_no_problems():
    assert settings_problems({"fps": 25.0, "steps": 4, "size": "480p", "chunk_frames": 81, "context_frames": 9,
                              "audio_cfg": 4.0, "seed": 3, "image": "a.png", "unrelated": object()}) == []


# ------------------------------------------------------------------------------------------ 6. weight files
@pytest.fixture(scope="module")
def good_file_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("w") / "good.safetensors"
    save_file({"a": torch.randn(64, 64), "b": torch.randn(8)}, str(path))
    return path.read_bytes()


@pytest.mark.parametrize("damage, words", [
    (lambda good: b"", "empty or cut off"),
    (lambda good: good[: len(good) // 2], "truncated"),
    (lambda good: good[:12], "truncated"),
    (lambda good: b"\x13\x37" * 300, "not a safetensors file"),
    (lambda good: b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n", "Git LFS pointer"),
    (lambda good: b"<!DOCTYPE html><html><body>Sign in</body></html>" * 4, "web page"),
])  # fmt: skip
def test_damaged_safetensors_name_the_file_and_the_damage(tmp_path, good_file_bytes, damage, words):
    from talkgen_core.audio.wav2vec2_weights import wav2vec2_config_name
    from talkgen_core.models.checkpoint import read_tensor_specs
    from talkgen_core.models.vae import load_vae

    path = tmp_path / "model.safetensors"
    path.write_bytes(damage(good_file_bytes))
    for load in (load_state_dict_file, read_tensor_specs, load_dit, load_vae, wav2vec2_config_name):
        with pytest.raises(CheckpointError) as caught:
            load(path)
        assert str(path) in str(caught.value) and words in str(caught.value), (load.__name__, caught.value)


def test_check_model_says_an_int8_dit_does_not_load(tmp_path, capsys):
    state = {k: v.contiguous() for k, v in build_dit("tiny", seed=5).state_dict().items()}
    int8 = {k: (v * 100).round().to(torch.int8) if k.startswith("blocks.") and v.ndim == 2 else v
            for k, v in state.items()}
    path = tmp_path / "int8.safetensors"
    save_file(int8, str(path))
    report = describe_checkpoint(path)
    assert report.config == "tiny" and report.keys_match and not report.loads
    assert "int8" in report.problem and "cannot be loaded" in report.problem
    assert cli_main(["check-model", str(path)]) == 1
    out = capsys.readouterr().out
    assert "loads: no" in out and "config: tiny" in out
    with pytest.raises(CheckpointError, match="int8"):  # the loader agrees with the check
        load_dit(path)
    scaled = dict(int8, **{f"{k[: -len('.weight')]}.scale_weight": torch.tensor([0.01])
                           for k, v in int8.items() if v.dtype == torch.int8})
    save_file(scaled, str(path))
    assert not describe_checkpoint(path).loads  # scales do not make integers loadable


def test_check_model_refuses_a_scale_that_does_not_fit_its_weight(tmp_path):
    state = {k: v.contiguous() for k, v in build_dit("tiny", seed=5).state_dict().items()}
    state["blocks.0.ffn.0.scale_weight"] = torch.ones(3)
    path = tmp_path / "badscale.safetensors"
    save_file(state, str(path))
    report = describe_checkpoint(path)
    assert not report.loads and "does not fit its weight" in report.problem
    with pytest.raises(CheckpointError, match="does not fit its weight"):
        load_dit(path)
