"""Write the README's animation from a demo video: every frame enlarged (nearest neighbour, so pixels stay
sharp) into a looping GIF at the video's rate.

    python scripts/demo_gif.py out/demo.mp4 docs/demo.gif [--scale 4] [--seconds 6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from talkgen_core.video.reader import VideoReader


def write_gif(video: Path, out: Path, scale: int, seconds: float) -> int:
    with VideoReader(video) as reader:
        fps = reader.fps
        frames = [Image.fromarray(rgb) for time_s, rgb in reader.iter_frames() if time_s < seconds]
    size = (frames[0].width * scale, frames[0].height * scale)
    frames = [f.resize(size, Image.NEAREST) for f in frames]
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0,
                   optimize=True)
    return len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0, help="how much of the video (default 6 s)")
    args = parser.parse_args()
    print(f"wrote {args.out}: {write_gif(args.video, args.out, args.scale, args.seconds)} frames")


if __name__ == "__main__":
    main()
