"""The Video Writer node: frames or a video plus a soundtrack -> an mp4 in ComfyUI's output folder."""

from __future__ import annotations

import contextlib
from typing import Iterator

from talkgen_core.files.atomic import TempFile
from talkgen_core.video.save import save_video

from . import host
from .types import CATEGORY


@contextlib.contextmanager
def _video_path(video) -> Iterator[str]:
    """A ComfyUI VIDEO (or, outside the host, a path) as a file path for the block. An in-memory video is
    saved to a temp copy first, and that copy is removed afterwards (copies used to pile up in temp)."""
    if isinstance(video, str):
        yield video
        return
    source = video.get_stream_source()
    if isinstance(source, str):
        yield source
        return
    copy = TempFile(host.temp_directory() / "talkgen" / "video.mp4")
    try:
        copy.handle.close()
        video.save_to(str(copy.path))
        yield str(copy.path)
    finally:
        copy.discard()


class VideoWriter:
    NODE_NAME = "VideoWriter"
    DISPLAY_NAME = "TalkGen Video Writer"
    CATEGORY = f"{CATEGORY}/video"
    DESCRIPTION = (
        "Writes an mp4 (H.264 + AAC) to the output folder, streaming frames to the encoder instead of holding the "
        "video in memory. Takes a VIDEO (e.g. from TalkGen Streaming Sampler; copied without re-encoding) or an "
        "IMAGE batch, and optionally a soundtrack, which is cut or padded to exactly the video's length."
    )
    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    OUTPUT_TOOLTIPS = ("the saved video (works with native Preview / Save nodes)",)
    OUTPUT_NODE = True
    FUNCTION = "write"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "filename_prefix": ("STRING", {"default": "TalkGen/video",
                                               "tooltip": "file name in ComfyUI's output folder; sub-folders allowed"}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.001,
                                  "tooltip": "frame rate for an IMAGE batch (a VIDEO keeps its own)"}),
                "crf": ("INT", {"default": 17, "min": 0, "max": 51,
                                "tooltip": "H.264 quality for IMAGE input: lower = better and larger (17 ~ visually "
                                           "lossless)"}),
            },
            "optional": {
                "video": ("VIDEO", {"tooltip": "a video to save (its own audio is replaced when audio is connected)"}),
                "images": ("IMAGE", {"tooltip": "or frames to encode"}),
                "audio": ("AUDIO", {"tooltip": "soundtrack; cut or padded to the video's length"}),
            },
        }

    def write(self, filename_prefix, fps, crf, video=None, images=None, audio=None):
        if (video is None) == (images is None):
            raise ValueError("TalkGen Video Writer: connect exactly one of video or images")
        path, record = host.next_output_path(filename_prefix, "mp4")
        with _video_path(video) if video is not None else contextlib.nullcontext() as source:
            written = save_video(
                path,
                source=source,
                images=images,
                fps=fps,
                audio=None if audio is None else audio["waveform"],
                sample_rate=None if audio is None else int(audio["sample_rate"]),
                crf=crf,
            )
        return {"ui": {"images": [record], "animated": (True,)}, "result": (host.video_from_file(written.path),)}


NODES = [VideoWriter]
