"""Speech conditioning computed once and reused: per-speaker wav2vec2 features plus the soundtrack.

Encoding audio is separate from sampling so a graph (or a batch) can encode a voice once and sample it
many times, and so the sampler never needs the audio encoder in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import torch

if TYPE_CHECKING:
    from talkgen_core.audio.load import Voice
    from talkgen_core.audio.soundtrack import Soundtrack

SAMPLE_RATE = 16000
AudioSource = Union[str, Path, torch.Tensor, dict, None]  # file, 16 kHz mono [S], ComfyUI AUDIO dict, or silent


@dataclass(frozen=True)
class SpeechEmbeds:
    features: torch.Tensor  # [P, T, L, D] per speaker, one row per output video frame
    mix: torch.Tensor  # [S] the speakers mixed on their timeline, at SAMPLE_RATE
    fps: float
    sample_rate: int = SAMPLE_RATE
    soundtrack: Optional["Soundtrack"] = None  # what the video carries; None: ``mix`` at ``sample_rate``

    @property
    def frames(self) -> int:
        return int(self.features.shape[1])

    @property
    def speakers(self) -> int:
        return int(self.features.shape[0])

    @property
    def seconds(self) -> float:
        return self.mix.numel() / self.sample_rate


def parse_times(text: str, what: str = "times") -> list[float]:
    """``"0, 4.5"`` -> ``[0.0, 4.5]``: non-negative seconds; a clear error names the bad entry."""
    values = []
    for index, part in enumerate(p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{what}: entry {index + 1} {part!r} is not a number of seconds") from None
        if not value >= 0:
            raise ValueError(f"{what}: entry {index + 1} ({value}) must be >= 0 seconds")
        values.append(value)
    return values


def _voice(source: Any, target_lufs: float | None) -> Voice | None:
    from talkgen_core.audio import load_voice

    if source is None:
        return None
    if isinstance(source, torch.Tensor):
        if source.ndim != 1:
            raise ValueError(f"audio tensors must be 16 kHz mono [S], got shape {tuple(source.shape)}")
        source = {"waveform": source.float()[None, None], "sample_rate": SAMPLE_RATE}
    return load_voice(source, sample_rate=SAMPLE_RATE, target_lufs=target_lufs)


def embed_speech(
    encoder: torch.nn.Module,
    audios: Sequence[AudioSource],
    mode: str = "para",
    fps: float = 25.0,
    starts_seconds: Sequence[float] | None = None,
    target_lufs: float | None = -23.0,
    soundtrack: str = "original",
) -> SpeechEmbeds:
    """Decode, normalise, place on one timeline (``para`` / ``add`` / ``timeline``) and encode every speaker.

    ``None`` entries are silent speakers. Exactly ``round(seconds x fps)`` feature rows come out. The
    soundtrack is the voices as given (``original``) or the encoder's 16 kHz mono mix (``normalized``).
    """
    from talkgen_core.audio import arrange_speakers, encode_speakers
    from talkgen_core.audio.soundtrack import check_choice, speech_soundtrack

    if not audios or all(a is None for a in audios):
        raise ValueError("no audio given: connect at least one voice (audio_1)")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    check_choice(soundtrack)
    voices = [_voice(a, target_lufs) for a in audios]
    layout = arrange_speakers([None if v is None else v.waveform for v in voices], mode,
                              starts_seconds=starts_seconds, sample_rate=SAMPLE_RATE, fps=fps)
    track = speech_soundtrack(voices, layout, soundtrack)
    del voices  # their 16 kHz copies are in layout.tracks now
    features = encode_speakers(encoder, layout, fps=fps).float()
    return SpeechEmbeds(features=features, mix=layout.mix, fps=float(fps), soundtrack=track)
