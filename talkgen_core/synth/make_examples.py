"""Regenerate ``example_inputs/``: a held-out face and speech clips for the demo.

    python -m talkgen_core.synth.make_examples [--out example_inputs] [--espeak]

Writes ``face.png`` (the held-out identity ``EXAMPLE_IDENTITY_SEED`` in its neutral pose),
``speech_synthetic.wav`` (the speech-like generator), and the inputs of the other example workflows:
``speech2.wav`` (a second voice), ``two_people.png`` (two held-out faces side by side) and ``source.mp4``
(a 30 fps talking clip with sound, the video-dubbing source). All but the mp4 are bit-for-bit deterministic
(the mp4's frames are deterministic; its H.264 bytes depend on the encoder build). With ``--espeak``
it also writes ``speech.wav``, a spoken English sentence from the espeak-ng program (needed only for
this step; its output depends on the installed espeak-ng version, so it is not guaranteed identical).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from talkgen_core.synth.identity import EXAMPLE_IDENTITY_SEED, is_held_out_identity, sample_identity
from talkgen_core.synth.render import render_reference
from talkgen_core.synth.speech import SAMPLE_RATE, synthesize_speech

FACE_SIZE = 256
SECOND_VOICE_SEED = 20261126
SECOND_VOICE_SECONDS = 4.0
PAIR_IDENTITY_SEEDS = (8, 9)
SOURCE_IDENTITY_SEED = 10
SOURCE_FPS = 30.0
SOURCE_FRAMES = 90
SOURCE_SIZE = 128
SYNTHETIC_SPEECH_SEED = 20261125
SYNTHETIC_SPEECH_SECONDS = 6.0
ESPEAK_SENTENCE = (
    "Hello! A program drew this face, and a tiny model learned to make it talk, in under an hour."
)
ESPEAK_VOICE = "en-us"
ESPEAK_WORDS_PER_MINUTE = 160
TARGET_RMS_DBFS = -20.0


def write_wav(path: Path, audio: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> None:
    """Mono float audio [S] in [-1, 1] -> 16-bit PCM WAV."""
    pcm = (audio.clamp(-1.0, 1.0).numpy() * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())


def write_face(path: Path, seed: int = EXAMPLE_IDENTITY_SEED, size: int = FACE_SIZE) -> None:
    if not is_held_out_identity(seed):
        raise ValueError(f"identity seed {seed} is a training identity; examples must use a held-out seed")
    image = render_reference(sample_identity(seed), size)  # [3, H, W] uint8
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)


def write_pair(path: Path, seeds: tuple[int, int] = PAIR_IDENTITY_SEEDS, size: int = FACE_SIZE) -> None:
    """Two held-out faces side by side (speaker 1 left, speaker 2 right): a [size, 2 * size] image."""
    if not all(is_held_out_identity(s) for s in seeds):
        raise ValueError(f"identity seeds {seeds} must all be held out from training")
    faces = [render_reference(sample_identity(s), size) for s in seeds]  # [3, H, W] uint8 each
    Image.fromarray(torch.cat(faces, dim=2).permute(1, 2, 0).numpy()).save(path)


def write_source_video(path: Path) -> None:
    """A held-out face talking for 3 s at 30 fps, with its own (synthetic) voice: the dubbing example's source."""
    from talkgen_core.synth.clip import make_clip
    from talkgen_core.video.writer import Mp4Writer

    clip = make_clip(SOURCE_IDENTITY_SEED, SOURCE_FRAMES, SOURCE_SIZE, fps=SOURCE_FPS, identity=SOURCE_IDENTITY_SEED)
    writer = Mp4Writer(path, fps=SOURCE_FPS, audio=clip.audio, sample_rate=clip.sample_rate, crf=12)
    writer.write(clip.frames_float())
    writer.close()


def espeak_speech(text: str = ESPEAK_SENTENCE) -> torch.Tensor:
    """Speak ``text`` with espeak-ng and return 16 kHz mono float audio [S] at about -20 dBFS RMS."""
    import io

    import soxr

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    wav_bytes = subprocess.run(
        [exe, "-v", ESPEAK_VOICE, "-s", str(ESPEAK_WORDS_PER_MINUTE), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav_bytes)) as f:
        rate = f.getframerate()
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    audio = soxr.resample(pcm, rate, SAMPLE_RATE)
    rms = float(np.sqrt(np.mean(audio[np.abs(audio) > 1e-3] ** 2)))
    audio = audio * (10.0 ** (TARGET_RMS_DBFS / 20.0) / max(rms, 1e-9))
    return torch.from_numpy(np.clip(audio, -0.99, 0.99).astype(np.float32))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("example_inputs"), help="output folder")
    parser.add_argument("--espeak", action="store_true", help="also write speech.wav with espeak-ng")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    write_face(args.out / "face.png")
    samples = int(SYNTHETIC_SPEECH_SECONDS * SAMPLE_RATE)
    write_wav(args.out / "speech_synthetic.wav", synthesize_speech(SYNTHETIC_SPEECH_SEED, samples))
    write_wav(args.out / "speech2.wav", synthesize_speech(SECOND_VOICE_SEED, int(SECOND_VOICE_SECONDS * SAMPLE_RATE)))
    write_pair(args.out / "two_people.png")
    write_source_video(args.out / "source.mp4")
    written = ["face.png", "speech_synthetic.wav", "speech2.wav", "two_people.png", "source.mp4"]
    if args.espeak:
        write_wav(args.out / "speech.wav", espeak_speech())
        written.append("speech.wav")
    print(f"wrote {', '.join(written)} to {args.out}")


if __name__ == "__main__":
    main()
