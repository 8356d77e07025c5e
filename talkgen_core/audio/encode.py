"""``encode_speech``: a mono waveform to frame-aligned wav2vec2 hidden states at any video frame rate.

Frame count: ``round(num_samples * fps / sample_rate)`` (the official pipeline, hard-wired to 25 fps,
uses ``int(duration * 25)``; the two differ by one frame only when the duration ends in the second half
of a frame). Clips longer than ``window_seconds`` are encoded in cross-faded windows (``long.py``).

Documented behaviours: silence encodes normally (the features of silence drive a still, closed mouth);
a clip shorter than the encoder's 25 ms receptive field is zero-padded to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import AudioInputError
from .long import encode_windowed, iter_encoded
from .resample import check_sample_rate, resample
from .spill import SpillRows
from .wav2vec2 import Wav2Vec2Model

DEFAULT_FPS = 25.0
DEFAULT_WINDOW_SECONDS = 60.0  # clips up to a minute get one pass, as the official code encodes every clip
DEFAULT_OVERLAP_SECONDS = 5.0
MAX_FPS = 240.0


def video_frame_count(num_samples: int, sample_rate: int, fps: float) -> int:
    """Video frames covering ``num_samples`` of audio: round(duration * fps), computed without float drift."""
    return int(round(num_samples * fps / sample_rate))


def _as_waveform(waveform: torch.Tensor | np.ndarray) -> torch.Tensor:
    wave = torch.as_tensor(waveform)
    if wave.ndim == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if wave.ndim != 1:
        raise AudioInputError(f"encode_speech expects a mono waveform [S] (or [1, S]), got shape {tuple(wave.shape)}; "
                              "downmix first, e.g. with load_audio")
    if wave.numel() == 0:
        raise AudioInputError("encode_speech got an empty waveform (zero samples); pass audio with sound in it")
    wave = wave.detach().float()
    # checked in pieces: isfinite over a 10-minute clip would allocate several clip-sized temporaries
    if not all(bool(torch.isfinite(piece).all()) for piece in wave.split(1 << 20)):
        raise AudioInputError("encode_speech got NaN/Inf samples; clean the waveform (e.g. torch.nan_to_num) "
                              "or reload the file with load_audio")
    return wave


def encode_speech(
    model: Wav2Vec2Model,
    waveform: torch.Tensor | np.ndarray,
    fps: float = DEFAULT_FPS,
    sample_rate: int = 16000,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    *,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    num_frames: int | None = None,
) -> torch.Tensor:
    """Mono waveform [S] at ``sample_rate`` -> hidden states of layers 1..L [T, L, D] on the model's device.

    T = ``num_frames`` if given (e.g. to match an existing video), else round(S / sample_rate * fps).
    Audio at another rate than the model's (16 kHz) is resampled with soxr first.
    """
    job = _EncodeJob.of(model, waveform, fps, sample_rate, window_seconds, overlap_seconds, num_frames)
    with torch.inference_mode():
        return encode_windowed(model, job.waveform, job.num_frames, job.window_frames, job.overlap_frames)


def encode_speech_to_disk(
    model: Wav2Vec2Model,
    waveform: torch.Tensor | np.ndarray | SpillRows,
    fps: float = DEFAULT_FPS,
    sample_rate: int = 16000,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    *,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    num_frames: int | None = None,
) -> SpillRows:
    """As :func:`encode_speech`, the features [T, L, D] written window by window into a temp file, bit for bit
    the same. A waveform on disk (``SpillRows`` [S]) is read slice by slice when it is at the model's rate and
    the model needs no per-clip input statistics; otherwise it is loaded first."""
    job = _EncodeJob.of(model, waveform, fps, sample_rate, window_seconds, overlap_seconds, num_frames)
    out = SpillRows((model.config.num_layers, model.config.hidden_size))
    with torch.inference_mode():
        for rows in iter_encoded(model, job.waveform, job.num_frames, job.window_frames, job.overlap_frames):
            out.append(rows)
    return out


@dataclass(frozen=True)
class _EncodeJob:
    """A checked encoder input: the prepared waveform [S] (in RAM, or on disk read as ``_Prepared`` slices)."""

    waveform: torch.Tensor | _Prepared
    num_frames: int
    window_frames: int
    overlap_frames: int

    @classmethod
    def of(cls, model: Wav2Vec2Model, waveform: torch.Tensor | np.ndarray | SpillRows, fps: float,
           sample_rate: int, window_seconds: float, overlap_seconds: float,
           num_frames: int | None) -> _EncodeJob:
        sample_rate = check_sample_rate(sample_rate, "encode_speech sample_rate")
        config = model.config
        streamed = (isinstance(waveform, SpillRows) and sample_rate == config.sample_rate
                    and not config.normalize_input and len(waveform) >= config.receptive_field)
        if isinstance(waveform, SpillRows) and not streamed:
            waveform = waveform[:]
        wave = _check_spilled(waveform) if isinstance(waveform, SpillRows) else _as_waveform(waveform)
        if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
            raise AudioInputError(f"fps {fps} is outside (0, {MAX_FPS:.0f}]; pass the video frame rate, e.g. 25")
        samples = int(wave.shape[0])
        if num_frames is None:
            num_frames = video_frame_count(samples, sample_rate, fps)
        if num_frames < 1:
            raise AudioInputError(
                f"audio of {samples / sample_rate * 1000:.1f} ms is shorter than half a video frame at "
                f"{fps:g} fps; pass at least {1000 / fps:.0f} ms of audio"
            )
        if window_seconds <= 0 or overlap_seconds < 0:
            raise ValueError(
                f"window_seconds must be > 0 and overlap_seconds >= 0, got {window_seconds}, {overlap_seconds}")
        device = model.masked_spec_embed.device
        if isinstance(wave, SpillRows):
            prepared: torch.Tensor | _Prepared = _Prepared(wave, model.masked_spec_embed.dtype, device)
        else:
            if sample_rate != config.sample_rate:
                wave = torch.from_numpy(resample(wave.numpy(), sample_rate, config.sample_rate))
            if wave.numel() < config.receptive_field:
                wave = torch.nn.functional.pad(wave, (0, config.receptive_field - wave.numel()))
            with torch.inference_mode():
                prepared = model.prepare_input(wave.to(device)[None])[0]  # [S]
        return cls(prepared, num_frames, max(1, int(round(window_seconds * fps))), int(round(overlap_seconds * fps)))


@dataclass(frozen=True)
class _Prepared:
    """A 16 kHz waveform on disk as the encoder reads it: slices in the model's dtype on its device (what
    ``prepare_input`` gives when the model takes no per-clip statistics)."""

    rows: SpillRows
    dtype: torch.dtype
    device: torch.device

    @property
    def shape(self) -> torch.Size:
        return self.rows.shape

    def __getitem__(self, key: slice) -> torch.Tensor:
        return self.rows[key].to(self.device, self.dtype)


def _check_spilled(rows: SpillRows) -> SpillRows:
    if rows.ndim != 1 or len(rows) == 0:
        raise AudioInputError(f"encode_speech expects a non-empty mono waveform [S], got shape {tuple(rows.shape)}")
    if not all(bool(torch.isfinite(block).all()) for block in rows.blocks()):
        raise AudioInputError("encode_speech got NaN/Inf samples; reload the file with load_audio")
    return rows
