"""``refine`` and ``generate --refine`` on the demo model: size doubled, frames and soundtrack kept, temp removed."""

from __future__ import annotations

import warnings

import av

from helpers.demo_fixtures import inputs  # noqa: F401 (pytest fixture)
from helpers.demo_workflow import save_demo_as_checkpoints
from talkgen_core.cli import main
from talkgen_core.pipeline import DemoWeightsWarning

FAST = ["--chunk-frames", "17", "--context-frames", "5", "--steps", "1"]


def probe(path) -> tuple[int, int, int, bool]:
    """(frames, width, height, has audio)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        size = (stream.codec_context.width, stream.codec_context.height)
        return sum(1 for _ in container.decode(stream)), *size, bool(container.streams.audio)


def quiet_main(args: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DemoWeightsWarning)
        return main(args)


def test_generate_with_refine_then_refine_again(inputs, tmp_path, capsys):
    out = tmp_path / "hr.mp4"
    code = quiet_main(["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--fps",
                       "20", "--size", "16x16", "--out", str(out), "--refine", "--refiner", "training-free",
                       "--refine-strength", "0.6", "--job-dir", "job", *FAST])
    assert code == 0 and probe(out) == (20, 32, 32, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.mp4", "job"]  # the low-resolution temp is gone
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == ["generate", "refine"]
    assert "20 frames at 20 fps (32x32)" in capsys.readouterr().out

    again = tmp_path / "hr2.mp4"
    assert quiet_main(["refine", "--video", str(out), "--image", str(inputs / "face.png"), "--out", str(again),
                       "--refiner", "training-free", "--scale", "1.5", *FAST]) == 0
    assert probe(again) == (20, 48, 48, True)


def test_refine_refuses_bad_options(inputs, tmp_path, capsys):
    base = ["refine", "--video", str(tmp_path / "missing.mp4"), "--image", str(inputs / "face.png"), "--out",
            str(tmp_path / "o.mp4")]
    assert quiet_main([*base, "--strength", "1"]) == 2
    assert "--strength must be in (0, 1)" in capsys.readouterr().err
    assert quiet_main([*base, "--scale", "0"]) == 2
    assert "--scale: scale must be greater than 0" in capsys.readouterr().err
    assert quiet_main(base) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert quiet_main(["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--out",
                       str(tmp_path / "o.mp4"), "--refine", "--refine-strength", "1.5"]) == 2
    assert "--refine-strength must be in (0, 1), got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "o.lowres.mp4").exists()
    assert quiet_main([*base, "--refiner", "embedded", "--strength", "0.5", "--condition-noise", "0.2"]) == 2
    assert "give --strength or --condition-noise, not both" in capsys.readouterr().err
    assert quiet_main([*base, "--condition-noise", "1"]) == 2
    assert "--condition-noise must be in [0, 1), got 1.0" in capsys.readouterr().err


def test_refine_with_real_checkpoint_files_takes_the_training_free_route(inputs, tmp_path, capsys):
    save_demo_as_checkpoints(tmp_path)
    files = ["--model", str(tmp_path / "base.safetensors"), "--model", str(tmp_path / "adapter.safetensors"),
             "--vae", str(tmp_path / "vae.safetensors"), "--audio-encoder", str(tmp_path / "wav2vec2.safetensors")]
    low = tmp_path / "low.mp4"
    assert quiet_main(["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--fps",
                       "20", "--size", "16x16", "--out", str(low), *files, *FAST]) == 0
    high = tmp_path / "high.mp4"
    assert quiet_main(["refine", "--video", str(low), "--image", str(inputs / "face.png"), "--out", str(high),
                       "--strength", "0.6", *files, *FAST]) == 0
    assert probe(high) == (20, 32, 32, True)
    assert quiet_main(["refine", "--video", str(low), "--image", str(inputs / "face.png"), "--out",
                       str(tmp_path / "x.mp4"), "--refiner", "embedded", *files, *FAST]) == 2
    assert "--refiner embedded is the demo's refiner" in capsys.readouterr().err


def test_generate_refine_uses_the_shipped_embedded_refiner_by_default(inputs, tmp_path, capsys):
    out = tmp_path / "hr.mp4"
    assert quiet_main(["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--fps",
                       "20", "--size", "16x16", "--out", str(out), "--refine", "--refine-condition-noise", "0.1",
                       *FAST]) == 0
    assert probe(out) == (20, 32, 32, True)
    again = tmp_path / "again.mp4"  # --strength: the embedded refiner's degradation strength
    assert quiet_main(["refine", "--video", str(out), "--image", str(inputs / "face.png"), "--out", str(again),
                       "--strength", "0.3", *FAST]) == 0
    assert probe(again) == (20, 64, 64, True)
