"""Decoding any audio source into float samples: files through PyAV, or a ComfyUI AUDIO dict.

Files: wav, flac, mp3, m4a/aac, ogg/opus, and the first audio track of video containers (mp4, mov,
mkv, webm). Everything FFmpeg can demux works; the list is what the tests cover.

A corrupt file never hangs the caller: PyAV's interrupt callback bounds every blocking open/read
(``timeout_s``), the packet loop checks a wall-clock deadline, and the decoded length is capped
(``max_duration_s``) so a file with a bogus header cannot grow memory without end.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from .errors import AudioInputError
from .resample import check_sample_rate
from .spill import SpillRows, SpilledSamples

log = logging.getLogger(__name__)

AudioSource = Union[str, os.PathLike, Mapping[str, Any]]

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_DURATION_S = 6 * 3600.0


@dataclass(frozen=True)
class DecodedAudio:
    """Samples as decoded, before downmix, resampling or loudness changes."""

    samples: np.ndarray | SpilledSamples  # [C, S] float32, nominally in [-1, 1]; on disk from decode_audio_to_disk
    sample_rate: int
    name: str  # the path, or "AUDIO input", for error messages

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[-1])

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate


def describe_source(source: AudioSource) -> str:
    """A short name for messages: the path, or a description of the in-memory input."""
    if isinstance(source, Mapping):
        return "AUDIO input (ComfyUI dict)"
    return str(source)


def decode_audio(
    source: AudioSource,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
) -> DecodedAudio:
    """Decode a path or a ComfyUI AUDIO dict ``{"waveform": [B, C, S], "sample_rate": int}``."""
    if isinstance(source, Mapping):
        return _from_comfy_dict(source)
    if isinstance(source, (str, os.PathLike)):
        return _decode_file(Path(source), timeout_s=timeout_s, max_duration_s=max_duration_s)
    raise AudioInputError(
        f"unsupported audio source of type {type(source).__name__}; pass a file path or a ComfyUI "
        "AUDIO dict {'waveform': tensor [B, C, S], 'sample_rate': int}"
    )


def decode_audio_to_disk(
    source: AudioSource,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
) -> DecodedAudio:
    """As :func:`decode_audio`, a file's samples written to a temp file as they are decoded
    (:class:`~talkgen_core.audio.spill.SpilledSamples`), so decoding holds one block, not the track. A
    ComfyUI dict is already in memory and is returned as :func:`decode_audio` gives it."""
    if isinstance(source, (str, os.PathLike)):
        return _decode_file(Path(source), timeout_s=timeout_s, max_duration_s=max_duration_s, to_disk=True)
    return decode_audio(source, timeout_s=timeout_s, max_duration_s=max_duration_s)


def _from_comfy_dict(audio: Mapping[str, Any]) -> DecodedAudio:
    name = describe_source(audio)
    if "waveform" not in audio or "sample_rate" not in audio:
        raise AudioInputError(
            f"{name} lacks 'waveform' or 'sample_rate' (keys: {sorted(audio)}); connect the output "
            "of a Load Audio node or build {'waveform': [B, C, S], 'sample_rate': int}"
        )
    rate = audio["sample_rate"]
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)
    if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool):
        raise AudioInputError(f"{name}: sample_rate must be an integer, got {rate!r}")
    check_sample_rate(int(rate), f"{name} sample_rate")
    wave = audio["waveform"]
    if hasattr(wave, "detach"):  # torch tensor, any device or dtype
        wave = wave.detach().float().cpu().numpy()
    samples = np.asarray(wave, dtype=np.float32)
    if samples.ndim == 3:
        if samples.shape[0] != 1:
            raise AudioInputError(
                f"{name} holds a batch of {samples.shape[0]} clips; pass one clip (batch size 1), "
                "e.g. split the batch first"
            )
        samples = samples[0]
    elif samples.ndim == 1:
        samples = samples[None]
    elif samples.ndim != 2:
        raise AudioInputError(f"{name}: waveform must be [B, C, S], got shape {tuple(samples.shape)}")
    return DecodedAudio(samples=np.ascontiguousarray(samples), sample_rate=int(rate), name=name)


def _decode_file(path: Path, *, timeout_s: float, max_duration_s: float, to_disk: bool = False) -> DecodedAudio:
    import av  # imported here: PyAV loads FFmpeg's libraries, which is slow for a package import

    name = str(path)
    if not path.exists():
        raise AudioInputError(f"audio file not found: {name}; check the path (relative paths resolve "
                              f"against {Path.cwd()})")
    if not path.is_file():
        raise AudioInputError(f"{name} is not a file")
    if path.stat().st_size == 0:
        raise AudioInputError(f"{name} is empty (0 bytes); re-export or re-download it")

    deadline = time.monotonic() + timeout_s
    try:
        container = av.open(name, mode="r", timeout=(timeout_s, timeout_s))
    except av.error.FFmpegError as exc:
        raise AudioInputError(
            f"could not open {name} as audio or video ({exc.__class__.__name__}: {exc}); the file is "
            "corrupt or not a media file: re-export it as wav/flac/mp3"
        ) from exc
    with container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise AudioInputError(f"{name} has no audio track (it holds {kinds}); pick a file with sound "
                                  "or add an audio track")
        stream = container.streams.audio[0]
        blocks, rate, bad_packets = _decode_stream(container, stream, name, deadline, timeout_s, max_duration_s,
                                                   to_disk)

    if blocks is None or not blocks.total:
        detail = f" ({bad_packets} packets failed to decode)" if bad_packets else ""
        raise AudioInputError(f"no audio samples could be decoded from {name}{detail}; the track is empty "
                              "or corrupt: re-export the audio")
    if bad_packets:
        log.warning("%s: skipped %d undecodable audio packets", name, bad_packets)
    return DecodedAudio(samples=blocks.finish(), sample_rate=rate, name=name)


def _join(blocks: list[np.ndarray]) -> np.ndarray:
    """Concatenate [C, n_i] blocks along time, freeing each once copied (peak: the result plus one block)."""
    out = np.empty((blocks[0].shape[0], sum(b.shape[1] for b in blocks)), dtype=np.float32)
    pos = 0
    blocks.reverse()
    while blocks:
        block = blocks.pop()
        out[:, pos:pos + block.shape[1]] = block
        pos += block.shape[1]
    return out


def _decode_stream(container: Any, stream: Any, name: str, deadline: float, timeout_s: float,
                   max_duration_s: float, to_disk: bool) -> tuple[SampleBlocks | None, int, int]:
    """Demux and decode one audio stream into sample blocks at the first frame's rate and layout."""
    import av

    blocks: SampleBlocks | None = None
    resampler = None
    rate = 0
    total = 0
    bad_packets = 0
    max_samples = math.inf

    def take(frames: list[Any]) -> None:
        nonlocal total, blocks
        for frame in frames:
            data = frame.to_ndarray()  # packed flt: [1, n * C], interleaved
            if blocks is None:
                blocks = SampleBlocks(frame.layout.nb_channels, to_disk)
            total += blocks.append(np.asarray(data, dtype=np.float32).reshape(-1, blocks.channels).T)

    try:
        for packet in container.demux(stream):
            if time.monotonic() > deadline:
                raise AudioInputError(f"decoding {name} took longer than {timeout_s:.0f} s; the file is "
                                      "probably corrupt: re-export it")
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                bad_packets += 1
                continue
            for frame in frames:
                if resampler is None:
                    rate = int(frame.sample_rate)
                    check_sample_rate(rate, f"{name} sample rate")
                    max_samples = max_duration_s * rate
                    # Fix layout and rate to the first frame's so mid-stream changes are converted. Packed
                    # "flt", not planar: PyAV counts planes by scanning FFmpeg's plane pointers for a NULL, which
                    # with 8 or more planar channels reads past the array and segfaults; packed has one plane.
                    resampler = _resampler(frame, name)
                take(resampler.resample(frame))
            if total > max_samples:
                raise AudioInputError(f"{name} is longer than {max_duration_s / 3600:.1f} h; cut it into "
                                      "parts or raise max_duration_s")
        if resampler is not None:
            take(resampler.resample(None))
    except av.error.FFmpegError as exc:
        if not total:
            raise AudioInputError(f"could not decode {name} ({exc.__class__.__name__}: {exc}); the file is "
                                  "corrupt: re-export it") from exc
        log.warning("%s: decoding stopped early (%s); keeping the %.2f s decoded so far", name, exc,
                    total / max(rate, 1))
    return blocks, rate, bad_packets


def _resampler(frame: Any, name: str) -> Any:
    """A converter of every frame to packed float32 at ``frame``'s layout and rate, for any channel count."""
    import av

    layout = frame.layout
    if layout.nb_channels < 1:
        raise AudioInputError(f"{name} declares an audio track with no channels; re-export the audio")
    try:
        return av.AudioResampler(format="flt", layout=layout, rate=int(frame.sample_rate))
    except (ValueError, av.error.FFmpegError) as exc:
        raise AudioInputError(
            f"{name}: its {layout.nb_channels}-channel layout {layout.name!r} cannot be converted ({exc}); "
            "re-export the audio as mono or stereo (e.g. ffmpeg -i IN -ac 2 OUT.wav)"
        ) from exc


class SampleBlocks:
    """Decoded frames (~1k samples each) gathered into few large blocks [C, BLOCK_SAMPLES], kept in memory or
    (``to_disk``) written to a temp file as each fills.

    Thousands of frame-sized arrays would fragment the heap, which then keeps their memory after they are
    freed; blocks of a megabyte and more are mapped and unmapped whole.
    """

    BLOCK_SAMPLES = 1 << 18

    def __init__(self, channels: int, to_disk: bool = False) -> None:
        self.channels = channels
        self.total = 0
        self._full: list[np.ndarray] = []
        self._spill = SpillRows((channels,)) if to_disk else None  # [S, C], as decoded
        self._block = np.empty((channels, self.BLOCK_SAMPLES), dtype=np.float32)
        self._used = 0

    def append(self, samples: np.ndarray) -> int:
        """Copy ``samples`` [C, n] in; returns n."""
        n = samples.shape[1]
        done = 0
        while done < n:
            take = min(n - done, self.BLOCK_SAMPLES - self._used)
            self._block[:, self._used:self._used + take] = samples[:, done:done + take]
            self._used += take
            done += take
            if self._used == self.BLOCK_SAMPLES:
                self._keep(self._block)
                self._used = 0
        self.total += n
        return n

    def finish(self) -> np.ndarray | SpilledSamples:
        """The samples [C, S]: joined in memory, or on disk."""
        if self._used:
            self._keep(self._block[:, :self._used])
            self._used = 0
        if self._spill is not None:
            return SpilledSamples(self._spill)
        return _join(self._full)

    def _keep(self, block: np.ndarray) -> None:
        if self._spill is not None:
            self._spill.append(block.T)  # the buffer is reused for the next block
        else:
            self._full.append(block)
            self._block = np.empty_like(self._block)
