import wave
from pathlib import Path

from PIL import Image

from talkgen_core.synth.make_examples import FACE_SIZE, SYNTHETIC_SPEECH_SECONDS, main


def test_examples_regenerate_identically(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    main(["--out", str(first)])
    main(["--out", str(second)])
    for name in ("face.png", "speech_synthetic.wav"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    with Image.open(first / "face.png") as img:
        assert img.size == (FACE_SIZE, FACE_SIZE) and img.mode == "RGB"
    with wave.open(str(first / "speech_synthetic.wav")) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        assert w.getnframes() == int(SYNTHETIC_SPEECH_SECONDS * 16000)
    assert not (first / "speech.wav").exists()  # espeak output only on request


def test_shipped_examples_are_what_the_script_makes(tmp_path):
    shipped = Path(__file__).resolve().parents[2] / "example_inputs"
    main(["--out", str(tmp_path)])
    for name in ("face.png", "speech_synthetic.wav"):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), f"regenerate example_inputs/{name}"
    with wave.open(str(shipped / "speech.wav")) as w:  # the espeak-ng sentence
        assert w.getframerate() == 16000 and w.getnchannels() == 1
        assert 5.0 <= w.getnframes() / 16000 <= 8.0
