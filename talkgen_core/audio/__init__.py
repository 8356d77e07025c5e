"""Audio pipeline: any audio or video file to frame-aligned wav2vec2 features, for one or many speakers.

    load_audio(source, sample_rate=16000, target_lufs=-23.0) -> Tensor [S]   mono float32
    load_voice(source, ...) -> Voice(waveform [S], soundtrack: the audio as decoded, for the video)
    build_wav2vec2(name_or_config, device="cpu", weights=None) -> Wav2Vec2Model
    encode_speech(model, waveform, fps=25.0, sample_rate=16000, window_seconds=60.0) -> [T, L, D]
    frame_windows(features, start, length) -> [length, 5, L, D]

Names are imported on first use, so ``import talkgen_core.audio`` stays cheap (no torch, no FFmpeg).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "load_audio": ".load",
    "load_voice": ".load",
    "Voice": ".load",
    "Soundtrack": ".soundtrack",
    "mix_soundtracks": ".soundtrack",
    "decode_audio": ".decode",
    "DecodedAudio": ".decode",
    "AudioInputError": ".errors",
    "normalize_loudness": ".loudness",
    "integrated_loudness": ".loudness",
    "Wav2Vec2Config": ".encoder_configs",
    "WAV2VEC2_CONFIGS": ".encoder_configs",
    "get_wav2vec2_config": ".encoder_configs",
    "Wav2Vec2Model": ".wav2vec2",
    "build_wav2vec2": ".wav2vec2",
    "load_wav2vec2_weights": ".wav2vec2_weights",
    "encode_speech": ".encode",
    "video_frame_count": ".encode",
    "frame_windows": ".windows",
    "chunk_audio_windows": ".windows",
    "ChunkAudioWindows": ".windows",
    "arrange_speakers": ".speakers",
    "encode_speakers": ".speakers",
    "null_speech_features": ".speakers",
    "SpeakerLayout": ".speakers",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .decode import DecodedAudio, decode_audio
    from .encode import encode_speech, video_frame_count
    from .encoder_configs import WAV2VEC2_CONFIGS, Wav2Vec2Config, get_wav2vec2_config
    from .errors import AudioInputError
    from .load import Voice, load_audio, load_voice
    from .loudness import integrated_loudness, normalize_loudness
    from .soundtrack import Soundtrack, mix_soundtracks
    from .speakers import SpeakerLayout, arrange_speakers, encode_speakers, null_speech_features
    from .wav2vec2 import Wav2Vec2Model, build_wav2vec2
    from .wav2vec2_weights import load_wav2vec2_weights
    from .windows import ChunkAudioWindows, chunk_audio_windows, frame_windows


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
