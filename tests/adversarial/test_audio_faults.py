"""Hostile and unusual audio: many channels, missing requirements, the soundtrack's fidelity, bounded memory.

Cases that could crash the interpreter (a segfault in FFmpeg bindings) run in a subprocess, so a crash fails
the test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter at the repository root; rc < 0 means it died of a signal."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout)


def multichannel_wav(path: Path, channels: int, seconds: float = 0.5, rate: int = 16000) -> Path:
    """A wav with ``channels`` channels, channel k a sine at 250 + 50 k Hz (amerge of mono sources)."""
    sources = []
    for k in range(channels):
        sources += ["-f", "lavfi", "-i", f"sine=frequency={250 + 50 * k}:duration={seconds}:sample_rate={rate}"]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *sources,
                    "-filter_complex", f"amerge=inputs={channels}", str(path)], check=True, timeout=60)
    return path


@pytest.mark.parametrize("channels", [8, 12, 24])
def test_many_channel_audio_decodes_without_a_crash(tmp_path, channels):
    path = multichannel_wav(tmp_path / f"ch{channels}.wav", channels)
    done = run_python("""
        import sys
        import numpy as np
        from talkgen_core.audio import decode_audio, load_audio
        decoded = decode_audio(sys.argv[1])
        peaks = np.abs(np.fft.rfft(decoded.samples, axis=1)).argmax(axis=1) / decoded.duration_s
        print(decoded.samples.shape[0], decoded.num_samples, load_audio(sys.argv[1]).numel())
        print(" ".join(str(round(p)) for p in peaks))
    """, str(path))
    assert done.returncode == 0, f"rc {done.returncode}: {done.stderr[-2000:]}"
    counts, peaks = done.stdout.split("\n")[:2]
    assert counts.split() == [str(channels), "8000", "8000"]
    assert [int(p) for p in peaks.split()] == [250 + 50 * k for k in range(channels)]  # channel order kept


PACK_IMPORT = """
    import importlib.abc, importlib.util, logging, sys
    from pathlib import Path
    hidden = set(sys.argv[2].split(","))

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in hidden:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Hide())
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    link = Path(sys.argv[1])
    spec = importlib.util.spec_from_file_location(link.name.replace("-", "_"), link / "__init__.py",
                                                  submodule_search_locations=[str(link)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    print("NODES", len(module.NODE_CLASS_MAPPINGS))
"""


@pytest.fixture()
def pack_link(tmp_path) -> Path:
    link = tmp_path / "custom_nodes" / "ComfyUI-TalkGen"
    link.parent.mkdir()
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    return link


def test_a_missing_requirement_is_named_at_import_and_the_nodes_still_register(pack_link):
    done = run_python(PACK_IMPORT, str(pack_link), "soxr,pyloudnorm")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "NODES 0" not in done.stdout and "NODES" in done.stdout
    assert "missing Python packages: soxr, pyloudnorm" in done.stderr
    assert "pip install -r" in done.stderr and "requirements.txt" in done.stderr


def test_a_requirement_the_nodes_import_fails_cleanly_without_raising(pack_link):
    done = run_python(PACK_IMPORT, str(pack_link), "PIL")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "NODES 0" in done.stdout
    assert "missing Python packages: pillow" in done.stderr
    assert "no nodes registered" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_requirement_at_run_time_names_the_install_command():
    done = run_python(PACK_IMPORT.split("logging.basicConfig")[0] + """
    import numpy as np
    from talkgen_core.audio.resample import resample
    resample(np.zeros(1600, dtype=np.float32), 44100, 16000)
    """, "-", "soxr")
    assert done.returncode == 1
    assert "resampling audio needs the Python package 'soxr'" in done.stderr
    assert "pip install -r" in done.stderr


# --- the soundtrack is the user's audio -------------------------------------------------------------------------

FACE = REPO_ROOT / "example_inputs" / "face.png"


def stereo_wav(path: Path, seconds: float, rate: int = 44100) -> Path:
    """Left 300 Hz, right 500 Hz at -4.4 dBFS: a stereo file whose channels can be told apart."""
    from audio.audio_signals import write_wav

    t = np.arange(int(seconds * rate)) / rate
    return write_wav(path, 0.6 * np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 500 * t)], 1), rate)


def loudness(samples: np.ndarray, rate: int) -> float:
    import pyloudnorm

    return pyloudnorm.Meter(rate).integrated_loudness(samples.T.astype(np.float64))


@pytest.mark.parametrize("choice", ["original", "normalized"])
def test_the_video_carries_the_users_audio_or_the_normalised_copy_on_request(tmp_path, choice):
    import av

    from talkgen_core.audio import decode_audio
    from talkgen_core.pipeline import generate

    source = stereo_wav(tmp_path / "st.wav", 2.02)
    result = generate(image=FACE, audio=source, out=tmp_path / "o.mp4", chunk_frames=33, soundtrack=choice)
    with av.open(str(result.path)) as container:
        stream = container.streams.audio[0]
        rate, layout = stream.rate, stream.layout.name
        seconds = float(stream.duration * stream.time_base)
    assert result.frames == 50
    assert abs(seconds - result.frames / result.fps) < 0.03  # still cut to exactly the video's length
    given, written = decode_audio(source), decode_audio(result.path)
    if choice == "original":
        assert (rate, layout) == (44100, "stereo")
        assert abs(loudness(written.samples, rate) - loudness(given.samples, 44100)) < 1.0
        spectrum = np.abs(np.fft.rfft(written.samples[:, 4410:48510], axis=1))  # 1 s: bins are 1 Hz
        assert list(spectrum.argmax(axis=1)) == [300, 500]  # left stays left
    else:
        assert (rate, layout) == (16000, "mono")
        assert abs(loudness(written.samples, rate) + 23.0) < 1.0


def test_audio_embeds_carries_the_original_for_the_sampler_and_the_writer(tmp_path):
    import torch

    from helpers.pack_import import import_pack_like_comfyui
    from talkgen_core.audio import build_wav2vec2

    pack = import_pack_like_comfyui(tmp_path)
    t = torch.arange(48000) / 48000
    voice = {"waveform": 0.2 * torch.stack([torch.sin(2 * np.pi * 300 * t), torch.sin(2 * np.pi * 700 * t)])[None],
             "sample_rate": 48000}
    node = pack.NODE_CLASS_MAPPINGS["TalkGenAudioEmbeds"]()
    encoder = build_wav2vec2("tiny")
    speech, audio, frames = node.embed(encoder, voice, "para", 25.0, True, -23.0)
    assert frames == 25 and audio["sample_rate"] == 48000 and audio["waveform"].shape == (1, 2, 48000)
    assert torch.equal(audio["waveform"], voice["waveform"]) and speech.soundtrack.sample_rate == 48000
    assert speech.mix.numel() == 16000  # the encoder's copy is unchanged
    _, normalised, _ = node.embed(encoder, voice, "para", 25.0, True, -23.0, soundtrack="normalized")
    assert normalised["sample_rate"] == 16000 and normalised["waveform"].shape == (1, 1, 16000)


def test_speakers_soundtracks_are_mixed_on_their_timeline():
    import torch

    from talkgen_core.audio import Soundtrack, mix_soundtracks

    stereo = Soundtrack(torch.full((2, 44100), 0.25), 44100)
    mono = Soundtrack(torch.full((1, 8000), 0.5), 16000)
    mixed = mix_soundtracks([stereo, None, mono], [0, 0, 16000], 16000)  # the third starts at 1 s
    assert mixed.sample_rate == 44100 and mixed.samples.shape == (2, 44100 + 22050)
    assert torch.allclose(mixed.samples[:, :44100], torch.tensor(0.25))
    assert torch.allclose(mixed.samples[:, 44200:66000], torch.tensor(0.5), atol=1e-3)
    assert mix_soundtracks([stereo], [0], 16000) is stereo


# --- the audio phase's memory -----------------------------------------------------------------------------------

AUDIO_PHASE_PEAK = """
    import re, sys
    import torch
    torch.set_num_threads(1)
    from talkgen_core.commands.generate import keep_peak_memory_flat
    from talkgen_core.pipeline import DEMO_PRESET, _speech, load_demo_models

    def status_mib(field):
        return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

    keep_peak_memory_flat()
    models = load_demo_models()
    _speech(models, sys.argv[1], None, "para", 25.0, DEMO_PRESET.audio_window_s)  # warm-up: imports, first buffers
    with open("/proc/self/clear_refs", "w") as f:  # restart the peak (VmHWM) from the current RSS: a warm-up
        f.write("5")  # spike above the phase's own peak would otherwise hide it
    before = status_mib("VmRSS")
    _speech(models, sys.argv[2], None, "para", 25.0, DEMO_PRESET.audio_window_s)
    print(status_mib("VmHWM") - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status")
@pytest.mark.parametrize("rate, channels, seconds", [(16000, 1, 600.0), (44100, 2, 300.0)])
def test_the_audio_phase_memory_is_bounded_whatever_the_length(tmp_path, rate, channels, seconds):
    """Peak RSS of decoding, normalising and encoding long audio over that of a tenth of it. Everything
    full-length (decoded samples, 16 kHz copy, placed tracks, mix, features) is on disk, so the peak is the
    same; before, it grew ~0.25 MiB per second of audio for 16 kHz mono and ~0.52 for 44.1 kHz stereo."""
    from audio.audio_signals import write_wav

    def wav(name: str, length: float) -> str:
        t = np.arange(int(length * rate)) / rate
        x = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], axis=1)
        return str(write_wav(tmp_path / name, x * (np.arange(t.size) % rate < 0.6 * rate)[:, None], rate))

    short, long = wav("short.wav", seconds / 10), wav("long.wav", seconds)
    peaks = []
    for target in (short, long):
        done = run_python(AUDIO_PHASE_PEAK, short, target, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        peaks.append(float(done.stdout.split()[-1]))
    growth_per_second = (peaks[1] - peaks[0]) / (0.9 * seconds)
    assert growth_per_second < 0.02, f"audio phase peak grows {growth_per_second:.3f} MiB per second of audio"
