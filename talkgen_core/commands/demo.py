"""``demo``: render example_inputs/ (a held-out synthetic face and a spoken sentence) with the embedded model."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "example_inputs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("out/demo.mp4"), help="output mp4 (default out/demo.mp4)")
    parser.add_argument("--image", type=Path, default=None, help="reference image (default example_inputs/face.png)")
    parser.add_argument("--audio", type=Path, default=None, help="speech (default example_inputs/speech.wav)")
    parser.add_argument("--gif", type=Path, default=None, help="also write an animated GIF preview here")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")


def _inputs(image: Path | None, audio: Path | None) -> tuple[Path, Path]:
    """The example inputs shipped in the repository, or the same ones rendered afresh when they are absent
    (e.g. an installed wheel without the repository's example_inputs/)."""
    if image is None and (EXAMPLES / "face.png").is_file():
        image = EXAMPLES / "face.png"
    if audio is None and (EXAMPLES / "speech.wav").is_file():
        audio = EXAMPLES / "speech.wav"
    if image is None or audio is None:
        from talkgen_core.synth.make_examples import main as make_examples

        scratch = Path(tempfile.mkdtemp(prefix="talkgen-demo-"))
        make_examples(["--out", str(scratch)])
        image = image or scratch / "face.png"
        audio = audio or scratch / "speech_synthetic.wav"
    return image, audio


def run(args: argparse.Namespace) -> int:
    from talkgen_core.pipeline import generate, load_demo_models
    from talkgen_core.video.writer import write_gif

    image, audio = _inputs(args.image, args.audio)
    models = load_demo_models("cpu")
    if models.random_weights:
        print("note: the demo model's trained weights are not in talkgen_core/weights/; rendering with RANDOM "
              "weights, so the video shows noise shaped by the pipeline, not a talking face.", file=sys.stderr)
    result = generate(image=image, audio=audio, out=args.out, models=models, seed=args.seed)
    print(f"demo video: {result.path.resolve()} ({result.frames} frames, {result.width}x{result.height}, "
          f"{result.audio_seconds:.1f} s of audio, rendered in {result.seconds:.1f} s)")
    if args.gif is not None:
        write_gif(result.path, args.gif)
        print(f"preview GIF: {args.gif.resolve()}")
    return 0
