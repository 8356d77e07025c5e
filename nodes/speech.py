"""Audio Embeds: one or more AUDIO inputs -> per-speaker frame-aligned speech features + the soundtrack."""

from __future__ import annotations

from talkgen_core.audio.soundtrack import SOUNDTRACK_CHOICES
from talkgen_core.conditioning.speech import SpeechEmbeds, embed_speech, parse_times

from .types import AUDIO_ENCODER, CATEGORY, SPEECH

SPEAKER_SLOTS = 4


class AudioEmbeds:
    NODE_NAME = "AudioEmbeds"
    DISPLAY_NAME = "TalkGen Audio Embeds"
    CATEGORY = f"{CATEGORY}/audio"
    DESCRIPTION = (
        "Encodes each speaker's audio into wav2vec2 features aligned to the video frames (the official order: "
        "features are resampled to the frame rate before the transformer). Speakers are placed on one timeline: "
        "para = all at once, add = one after another, timeline = at the given start times."
    )
    RETURN_TYPES = (SPEECH, "AUDIO", "INT")
    RETURN_NAMES = ("speech", "soundtrack", "frames")
    OUTPUT_TOOLTIPS = (
        "per-speaker speech features for TalkGen Sampler",
        "the video's soundtrack: the voices as given (their own rate, channels and level) placed on their timeline, "
        "or the encoder's 16 kHz mono normalised mix (soundtrack = normalized)",
        "number of video frames the audio covers: round(seconds x fps)",
    )
    FUNCTION = "embed"

    @classmethod
    def INPUT_TYPES(cls):
        optional = {
            f"audio_{i}": ("AUDIO", {"tooltip": f"speaker {i}'s voice (optional)"}) for i in range(2, SPEAKER_SLOTS + 1)
        }
        return {
            "required": {
                "audio_encoder": (AUDIO_ENCODER, {"tooltip": "from TalkGen Audio Encoder Loader"}),
                "audio_1": ("AUDIO", {"tooltip": "speaker 1's voice (any ComfyUI AUDIO: Load Audio, a video's track)"}),
                "mode": (["para", "add", "timeline"], {
                    "default": "para",
                    "tooltip": "para: speakers talk at the same time; add: speaker 2 starts when speaker 1 ends; "
                               "timeline: each starts at its time in start_times"}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 120.0, "step": 0.001,
                                   "tooltip": "video frame rate the features are aligned to (25 = the models' training rate)"}),
                "normalize_loudness": ("BOOLEAN", {"default": True,
                                                   "tooltip": "bring each voice to target_lufs first, as the official pipeline does; "
                                                              "silence stays silent"}),
                "target_lufs": ("FLOAT", {"default": -23.0, "min": -50.0, "max": -5.0, "step": 0.5,
                                           "tooltip": "loudness target (ITU-R BS.1770) when normalize_loudness is on"}),
            },
            "optional": {
                **optional,
                "start_times": ("STRING", {"default": "", "tooltip": "timeline mode: start of each speaker in seconds, "
                                                                      "comma separated (e.g. 0, 4.5)"}),
                "soundtrack": (list(SOUNDTRACK_CHOICES), {
                    "default": "original",
                    "tooltip": "what the video carries: original = the voices as given (own rate, channels, level); "
                               "normalized = the 16 kHz mono loudness-normalised copy the encoder hears"}),
            },
        }

    def embed(self, audio_encoder, audio_1, mode, fps, normalize_loudness, target_lufs,
              audio_2=None, audio_3=None, audio_4=None, start_times="", soundtrack="original"):
        audios = [audio_1, audio_2, audio_3, audio_4]
        while audios and audios[-1] is None:
            audios.pop()
        speech: SpeechEmbeds = embed_speech(
            audio_encoder, audios, mode=mode, fps=fps,
            starts_seconds=parse_times(start_times, "start_times") if mode == "timeline" else None,
            target_lufs=target_lufs if normalize_loudness else None, soundtrack=soundtrack,
        )
        track = speech.soundtrack
        return (speech, {"waveform": track.samples[None], "sample_rate": track.sample_rate}, speech.frames)


NODES = [AudioEmbeds]
