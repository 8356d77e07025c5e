"""``generate()``: the one high-level entry the CLI, the ComfyUI nodes and the batch queue call.

image (or images / keyframes) or a source video + one or more speakers' audio + settings
-> frames streamed into an mp4 (audio muxed in) or another frame sink, exactly ``round(audio s x fps)`` long.

Models: pass :class:`Models` for real checkpoints, or let :func:`load_demo_models` build the embedded demo
model (the "demo" DiT, VAE and wav2vec2), with the weights shipped in
``talkgen_core/weights/`` (:data:`DEMO_WEIGHT_FILES`) or, when those are absent, seeded random weights and a
warning. Settings left as None take the preset of the model kind: the cheap demo preset (few steps, about
the short side 64 pixels) or the official one (40 steps, text CFG 5, audio CFG 4, shift 7 at 480p / 11 at 720p).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
from torch import nn

from talkgen_core.conditioning.face_window import FaceWindow, PastingSink, find_face_window
from talkgen_core.conditioning.speaker_masks import speaker_masks as default_speaker_masks
from talkgen_core.files.guard import refuse_overwriting_inputs
from talkgen_core.files.lock import FolderLock
from talkgen_core.models.runtime import dit_runtime
from talkgen_core.models.sequence_parallel import check_sequence_parallel
from talkgen_core.models.step_cache import StepCacheConfig
from talkgen_core.models.demo import (  # noqa: F401 (the demo's names, re-exported where they were)
    DEMO_MODEL_NAMES, DEMO_SEED, DEMO_WEIGHT_FILES, WEIGHTS_DIR, DemoWeightsWarning, build_demo_networks,
    demo_model_names,
)
from talkgen_core.sampling.guidance import APGConfig, GuidanceConfig
from talkgen_core.sampling.jobdir import JobDir, hash_inputs, job_key
from talkgen_core.sampling.presets import DEFAULT_PRESET, get_sampling_preset
from talkgen_core.sampling.references import (
    ImageInput, KeyframeReferences, PerChunkReferences, ReferenceProvider, StillReference, VideoReferences,
    to_pixels,
)
from talkgen_core.sampling.schedules import SHIFT_480P, default_shift
from talkgen_core.sampling.sizes import resolve_size
from talkgen_core.sampling.strategies import get_strategy, strategy_params
from talkgen_core.sampling.streaming import (
    StreamConditioning, StreamingSampler, StreamProgress, StreamSettings,
)
from talkgen_core.validation import check_generate_call
from talkgen_core.video.writer import FrameCollector, FrameSink, Mp4Writer

LOG = logging.getLogger(__name__)
AudioInput = Union[str, Path, torch.Tensor, dict]  # a file, a 16 kHz mono waveform [S], or a ComfyUI AUDIO dict
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Preset:
    steps: int
    text_cfg: float
    audio_cfg: float
    size: str
    shift: Optional[float]  # None: by resolution (7 at 480p, 11 at 720p)
    # wav2vec2 transformer window in seconds (None: the audio module's default). Attention memory grows with
    # the square of the window, so the CPU demo uses short windows to keep its peak flat in the audio length.
    audio_window_s: Optional[float] = None


DEMO_PRESET = Preset(steps=4, text_cfg=1.0, audio_cfg=2.0, size="demo", shift=SHIFT_480P, audio_window_s=10.0)
OFFICIAL_PRESET = Preset(steps=40, text_cfg=5.0, audio_cfg=4.0, size="480p", shift=None)


@dataclass
class Models:
    """The three networks a run needs, plus how they were made (recorded in job manifests)."""

    dit: nn.Module
    vae: Any
    wav2vec2: nn.Module
    names: dict[str, str] = field(default_factory=dict)
    is_demo: bool = False
    random_weights: bool = False
    sampling_preset: Optional[str] = None  # the preset the DiT is made for, used when none is named


@dataclass(frozen=True)
class GenerateResult:
    path: Optional[Path]  # the mp4, when one was written
    frames: int
    fps: float
    chunks: int
    replayed_chunks: int  # chunks restored from the job directory
    seconds: float  # wall time of the whole call
    width: int
    height: int
    audio_seconds: float
    images: Optional[torch.Tensor] = None  # [T, H, W, 3] in [0, 1] when neither out nor sink was given
    job_path: Optional[Path] = None  # the job folder, when the run used one
    dit_forwards: int = 0  # guidance passes whose DiT blocks were computed (step-cache skips not counted)
    peak_memory_bytes: int = 0  # peak RSS on the CPU, max allocated on a CUDA device
    memory_kind: str = "rss"  # "rss" or "cuda_max_allocated"
    step_cache_rule: Optional[str] = None  # the step cache's rule ("magcache (FILE)" / "teacache-raw"), None = off
    face_window: Optional[dict] = None  # face framing's window {left, top, side} in output pixels, None = whole frame

    def report(self) -> dict:
        """What ``generate --report`` writes (and the in-process queue keeps per job)."""
        return {"frames": self.frames, "chunks": self.chunks, "replayed_chunks": self.replayed_chunks,
                "dit_forwards": self.dit_forwards, "seconds": round(self.seconds, 3),
                "peak_memory_bytes": self.peak_memory_bytes, "memory_kind": self.memory_kind,
                "fps": self.fps, "width": self.width, "height": self.height,
                "step_cache_rule": self.step_cache_rule, "face_window": self.face_window}


def load_demo_models(
    device: Union[str, torch.device] = "cpu", weights_dir: Optional[Path] = None, variant: str = "base"
) -> Models:
    """The embedded demo model: shipped weights when all three files exist, else seeded random weights.
    ``variant``: the base DiT or its few-step ``distilled`` student (which brings its own sampling preset)."""
    demo = build_demo_networks(device, weights_dir, variant)
    return Models(demo.dit, demo.vae, demo.wav2vec2, demo_model_names(variant), is_demo=True,
                  random_weights=demo.random_weights, sampling_preset=demo.sampling_preset)


def load_demo_refiner(device: Union[str, torch.device] = "cpu", weights_dir: Optional[Path] = None) -> Models:
    """The embedded refiner (:mod:`talkgen_core.refine.embedded`) with the demo's VAE (its decoder fitted to the
    refined size) and audio encoder; its own sampling preset (``demo-refiner``) applies when none is named."""
    from talkgen_core.refine.embedded import load_embedded_refiner, refiner_vae

    refiner = load_embedded_refiner(device, weights_dir)
    demo = build_demo_networks(device, weights_dir)
    return Models(refiner, refiner_vae(demo.vae, weights_dir), demo.wav2vec2, dict(demo_model_names(), dit="demo-refiner"), is_demo=True,
                  random_weights=demo.random_weights, sampling_preset="demo-refiner")


def load_models(
    dit: Sequence[Union[str, Path]],
    vae: Union[str, Path],
    audio_encoder: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    compute_dtype: Optional[torch.dtype] = None,
    vae_dtype: str = "auto",
) -> Models:
    """Real checkpoints: the DiT files (base shards or single file, then adapter files), the Wan2.1 VAE and the
    chinese-wav2vec2-base encoder. Errors name the file that does not fit its slot. ``vae_dtype``: "auto"
    (bf16 on a GPU, fp32 on the CPU), "fp32", "bf16" or "fp16"."""
    from talkgen_core.audio import build_wav2vec2
    from talkgen_core.audio.wav2vec2_weights import wav2vec2_config_name
    from talkgen_core.models import vae as vae_module
    from talkgen_core.models.handles import load_dit_handle

    handle = load_dit_handle(dit, device=device, compute_dtype=compute_dtype)
    names = {"dit": handle.name, "vae": Path(vae).name, "wav2vec2": Path(audio_encoder).name}
    config = wav2vec2_config_name(audio_encoder)
    encoder = build_wav2vec2(config, device=device, weights=str(audio_encoder))
    vae_model = vae_module.load_vae(vae, device=device, dtype=vae_module.vae_dtype(vae_dtype, device))
    return Models(handle.module, vae_model.requires_grad_(False), encoder, names)


@contextlib.contextmanager
def cpu_threads(count: Optional[int]) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (None: leave as is), restoring the setting afterwards."""
    if count is None:
        yield
        return
    if count < 1:
        raise ValueError(f"cpu threads must be >= 1, got {count}")
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_voice(audio: AudioInput):
    """The encoder's 16 kHz mono copy and the soundtrack of one speaker (a tensor is both as given; a file's
    are kept on disk, so a voice of any length takes bounded RAM)."""
    from talkgen_core.audio import Soundtrack, Voice
    from talkgen_core.audio.load import spill_voice

    if isinstance(audio, torch.Tensor):
        wave = audio.detach().float().reshape(-1) if audio.ndim == 1 or audio.shape[0] == 1 else None
        if wave is None:
            raise ValueError(f"audio tensors must be mono 16 kHz [S], got shape {tuple(audio.shape)}")
        return Voice(wave, Soundtrack(wave[None], SAMPLE_RATE))
    return spill_voice(audio, sample_rate=SAMPLE_RATE)


@dataclass
class _Speech:
    features: Any  # [P, T, L, D] per speaker, one row per output frame: a tensor, or audio.spill.SpilledStack
    soundtrack: Any  # talkgen_core.audio.Soundtrack: [C, S] at its own rate, what the video carries
    seconds: float
    identity: Any  # what the job hash uses: the placed tracks [P, S] (audio.spill.SpilledStack), or given features


def _speech(models: Models, audio, speech, mode: str, fps: float, window_s: Optional[float],
            soundtrack: str = "original") -> _Speech:
    """Pre-encoded speech (``SpeechEmbeds``: features + soundtrack) as given, or the audio placed on one timeline
    and encoded per speaker; ``soundtrack`` picks the voices as given or the encoder's normalised mix."""
    from talkgen_core.audio import Soundtrack
    from talkgen_core.audio.soundtrack import check_choice, speech_soundtrack

    check_choice(soundtrack)
    if speech is not None:
        if audio is not None:
            raise ValueError("give either audio (files or waveforms) or speech (already encoded), not both")
        if abs(float(speech.fps) - fps) > 1e-6:
            raise ValueError(f"the speech was encoded at {speech.fps} fps but the video is {fps} fps; re-encode it "
                             "at the output frame rate")
        track = getattr(speech, "soundtrack", None) or Soundtrack(speech.mix[None], SAMPLE_RATE)
        return _Speech(speech.features.float(), track, speech.mix.numel() / SAMPLE_RATE, speech.features)
    from talkgen_core.audio.speakers import arrange_speakers_on_disk, encode_speakers_to_disk

    audios = list(audio) if isinstance(audio, (list, tuple)) else ([] if audio is None else [audio])
    if not audios:
        raise ValueError("no audio given; pass at least one audio file or waveform (--audio)")
    if models.wav2vec2 is None:
        raise ValueError("these models have no audio encoder; pass speech= (pre-encoded) instead of audio=")
    voices = [_load_voice(a) for a in audios]
    layout = arrange_speakers_on_disk([v.waveform for v in voices], mode, sample_rate=SAMPLE_RATE, fps=fps)
    track = speech_soundtrack(voices, layout, soundtrack)
    del voices  # their 16 kHz copies are in layout.tracks now; only the soundtrack is kept while encoding
    window = {} if window_s is None else {"window_seconds": window_s}
    features = encode_speakers_to_disk(models.wav2vec2, layout, fps=fps, **window)  # on disk: long audio, flat RAM
    return _Speech(features, track, layout.num_samples / SAMPLE_RATE, layout.tracks)


def _check_audio_fits(models: Models, features: torch.Tensor) -> None:
    config = getattr(models.dit, "config", None)
    if config is None:
        return
    want = (config.audio_layers, config.audio_dim)
    if tuple(features.shape[-2:]) != want:
        raise ValueError(
            f"the audio encoder gives {tuple(features.shape[-2:])} (layers, width) per frame but the DiT expects "
            f"{want}; use the wav2vec2 model that matches the DiT"
        )


def _encoded_conditioning(models: Models, device: torch.device, text_context, negative_context, clip_encoder,
                          clip_features, *, prompt, negative_prompt, text_encoder, tokenizer, text_encoder_device,
                          clip_vision):
    """(text_context, negative_context, clip_encoder): from ``text_encoder`` / ``clip_vision`` where given (their
    widths checked against the DiT's), else as passed."""
    config = getattr(models.dit, "config", None)
    if text_encoder is not None:
        if text_context is not None or negative_context is not None:
            raise ValueError("give text_encoder (with prompt / negative_prompt) or text_context / negative_context, "
                             "not both")
        from talkgen_core.encoders.conditioning import prompt_states

        text_context, negative_context = prompt_states(
            text_encoder, prompt, negative_prompt, device=text_encoder_device or device, tokenizer=tokenizer,
            **({"text_dim": config.text_dim, "max_tokens": config.text_len} if config is not None else {}))
    if clip_vision is not None:
        if clip_encoder is not None or clip_features is not None:
            raise ValueError("give clip_vision (a CLIP vision model) or clip_encoder / clip_features, not both")
        from talkgen_core.encoders.conditioning import clip_vision_encoder

        clip_encoder = clip_vision_encoder(clip_vision, device=device,
                                           clip_dim=config.clip_dim if config is not None else None)
    return text_context, negative_context, clip_encoder


def _encoder_name(encoder) -> str:
    """How a job manifest names an encoder: its file name, or its class for a loaded one."""
    return Path(encoder).name if isinstance(encoder, (str, Path)) else type(encoder).__name__


def _face_window(face_crop: str, models: Models, image: Any, references: ReferenceProvider, voices: int,
                 speaker_masks: Any) -> Optional[FaceWindow]:
    """``face_crop`` "auto": the window that frames the face of a still picture with one voice for the demo model
    (None when it is a portrait already, when nothing fits a face, or when this run is not such a run)."""
    if face_crop == "off" or not models.is_demo or image is None or voices > 1 or speaker_masks is not None:
        return None
    from talkgen_core.refine.detectors import net_detector
    from talkgen_core.refine.embedded import load_landmark_net

    try:
        net = load_landmark_net()
    except FileNotFoundError as missing:
        LOG.warning("face_crop auto: %s; rendering the whole frame", missing)
        return None
    assert isinstance(references, StillReference)
    window = find_face_window(references.image, net_detector(net))
    if window is not None:
        LOG.info("face_crop auto: the face is not framed like the demo's portraits; rendering the window %s of the "
                 "frame and pasting it back (face_crop='off' renders the whole frame)", window.to_dict())
    return window


def _references(image, images, keyframe_times, video, size_spec: Optional[str], default_size: str, anchor: str,
                source_frames: bool, anchor_image=None) -> tuple[ReferenceProvider, tuple[int, int]]:
    """Build the reference provider and return it with the output size (height, width)."""
    given = sum(x is not None for x in (image, images, video))
    if given != 1:
        raise ValueError("give exactly one of image, images (per chunk or keyframes) or video")
    if video is not None:
        from talkgen_core.video.reader import VideoReader

        opened_here = not hasattr(video, "frame_at")  # a path, or an open source (e.g. frames in memory)
        reader = VideoReader(video) if opened_here else video
        size = resolve_size(size_spec, (reader.height, reader.width), default_size)
        return VideoReferences(reader, size, anchor=anchor, with_source_frames=source_frames,
                               close_source=opened_here, anchor_image=anchor_image), size
    first = to_pixels(image if image is not None else images[0])
    size = resolve_size(size_spec, (first.shape[1], first.shape[2]), default_size)
    if image is not None:
        return StillReference(first, size), size
    if keyframe_times is not None:
        return KeyframeReferences(images, keyframe_times, size, anchor=anchor), size
    return PerChunkReferences(images, size), size


def _stream_settings(preset: Preset, size_hw: tuple[int, int], *, steps: Optional[int], shift: Optional[float],
                     solver: str, text_cfg: Optional[float], audio_cfg: Optional[float], apg: bool, seed: int,
                     context_mode: str, colour_strength: float, sdedit_strength: float,
                     strategy: str = "infinitetalk", strategy_params: Optional[dict] = None,
                     timesteps: Optional[tuple[float, ...]] = None) -> StreamSettings:
    """Sampling settings: the given values, the preset's where None (shift by resolution for real models)."""
    if shift is None:
        shift = preset.shift if preset.shift is not None else default_shift("720p" if min(size_hw) >= 704 else "480p")
    return StreamSettings(
        steps=steps if steps is not None else preset.steps,
        shift=float(shift),
        solver=solver,
        guidance=GuidanceConfig(
            text_scale=preset.text_cfg if text_cfg is None else float(text_cfg),
            audio_scale=preset.audio_cfg if audio_cfg is None else float(audio_cfg),
            apg=APGConfig() if apg else None,
        ),
        seed=int(seed),
        context_mode=context_mode,  # type: ignore[arg-type]
        colour_strength=float(colour_strength),
        sdedit_strength=float(sdedit_strength),
        strategy=strategy,
        strategy_params=strategy_params or {},
        timesteps=timesteps,
    )


def _inputs_hash(image, images, video, keyframe_times, speech: torch.Tensor, *extra) -> str:
    """Hash of everything the output depends on besides the settings (pictures by pixels, videos by content)."""
    pictures = [to_pixels(im) for im in ([image] if image is not None else list(images or []))]
    source = None if video is None else getattr(video, "frames", video)  # a file, or in-memory frames
    return hash_inputs([*pictures, source, keyframe_times, speech, *extra])


def _input_files(image, images, video, audio, anchor_image=None) -> list[tuple[str, object]]:
    """The inputs that may be files, named as the errors name them."""
    audios = list(audio) if isinstance(audio, (list, tuple)) else [audio]
    return [("image", image), *(("image", im) for im in (images if images is not None else [])), ("video", video),
            ("anchor_image", anchor_image),
            *((f"audio {i + 1}" if len(audios) > 1 else "audio", a) for i, a in enumerate(audios))]


def _run_into(sampler: StreamingSampler, sink: FrameSink, job: Optional[JobDir],
              progress: Optional[Callable[[StreamProgress], None]], cancel: Optional[Callable[[], bool]]):
    """Run the chunk loop into the sink and close it. On an error or cancel an mp4 is dropped (a short video at
    the output name would look finished); the finished chunks stay in the job folder, so a rerun resumes."""
    try:
        result = sampler.run(sink, job=job, progress=progress, cancel=cancel)
    except BaseException:
        abort = getattr(sink, "abort", None)  # an Mp4Writer, also inside face framing's PastingSink
        if abort is not None:
            abort()
        raise
    sink.close()
    return result


def generate(
    *,
    audio: Optional[Union[AudioInput, Sequence[AudioInput]]] = None,
    speech: Optional[Any] = None,  # talkgen_core.conditioning.speech.SpeechEmbeds, instead of audio
    image: Optional[ImageInput] = None,
    images: Optional[Sequence[ImageInput]] = None,
    keyframe_times: Optional[Sequence[float]] = None,
    video: Optional[Union[str, Path, Any]] = None,  # a file, or a FrameSequence (frames in memory)
    anchor_image: Optional[ImageInput] = None,  # with video: the reference of every chunk (the refiner's anchor)
    audio_mode: str = "para",
    soundtrack: str = "original",
    out: Optional[Union[str, Path]] = None,
    sink: Optional[FrameSink] = None,
    fps: float = 25.0,
    size: Optional[str] = None,
    preset: Optional[str] = None,
    steps: Optional[int] = None,
    shift: Optional[float] = None,
    solver: Optional[str] = None,
    text_cfg: Optional[float] = None,
    audio_cfg: Optional[float] = None,
    apg: bool = False,
    chunk_frames: Optional[int] = None,
    context_frames: Optional[int] = None,
    seed: int = 42,
    context_mode: str = "latent",
    colour_strength: float = 1.0,
    sdedit_strength: float = 1.0,
    reference_anchor: str = "chunk_start",
    strategy: str = "infinitetalk",
    overlap_frames: Optional[int] = None,
    bank_size: Optional[int] = None,
    bank_every: Optional[int] = None,
    memory_sigma: Optional[float] = None,
    condition_noise: Optional[float] = None,
    landmarks: Optional[str] = None,
    text_context: Optional[torch.Tensor] = None,
    negative_context: Optional[torch.Tensor] = None,
    clip_encoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    clip_features: Optional[torch.Tensor] = None,
    prompt: Optional[str] = None,
    negative_prompt: Optional[str] = None,
    text_encoder: Optional[Any] = None,  # a umT5 file (ComfyUI layout), or an encoders.UMT5TextEncoder
    tokenizer: Optional[Union[str, Path]] = None,
    text_encoder_device: Optional[Union[str, torch.device]] = None,
    clip_vision: Optional[Any] = None,  # a CLIP vision file (clip_vision_h), or an encoders.CLIPVisionEncoder
    speaker_masks: Optional[Any] = None,  # [P, h, w] masks or SpeakerMasks; None: side-by-side columns
    audio_scale: Union[float, torch.Tensor] = 1.0,
    job_dir: Optional[Union[str, Path]] = None,
    resume: bool = False,
    job_root: Optional[Union[str, Path]] = None,
    models: Optional[Models] = None,
    device: Optional[Union[str, torch.device]] = None,
    threads: Optional[int] = None,
    progress: Optional[Callable[[StreamProgress], None]] = None,
    cancel: Optional[Callable[[], bool]] = None,
    offload_blocks: int = 0,
    step_cache: float = 0.0,
    sequence_parallel: int = 1,
    face_crop: str = "auto",
) -> GenerateResult:
    """Render a talking video; see the module docstring. Returns what was written.

    ``preset``: a named sampling preset (:data:`~talkgen_core.sampling.presets.SAMPLING_PRESETS`: ``auto``,
    ``official``, ``lightx2v-4step``, ``flashtalk``) for ``steps``, ``shift``, ``solver``, ``text_cfg``,
    ``audio_cfg``, ``chunk_frames`` and ``context_frames``; each of those given explicitly wins. None / ``auto``:
    the model kind's preset, euler, 81-frame chunks with 9 context frames.

    Inputs: exactly one of ``image`` (image-to-video), ``images`` (one per chunk, or keyframes at
    ``keyframe_times`` seconds) or ``video`` (sparse-frame dubbing; SDEdit from its latents when
    ``sdedit_strength`` < 1; ``anchor_image``: a picture every chunk takes as its reference, and colours are pulled
    towards, instead of the video's frames, as the refiner uses it). ``audio``: one source or a list, one per speaker, combined by ``audio_mode``
    ("para" simultaneous, "add" one after the other); or ``speech``, already encoded (features + soundtrack,
    at ``fps``), so the run needs no audio encoder. ``soundtrack``: what the mp4 carries, "original" (the audio
    as given: its own rate, channels and level) or "normalized" (the encoder's 16 kHz mono copy). Output: ``out`` (mp4 with the audio), else ``sink``,
    else the frames are returned in ``GenerateResult.images``. ``text_context`` / ``negative_context`` are
    prompt states ``[1, L, text_dim]`` (zeros when absent); ``clip_encoder`` maps each chunk's reference
    frame ``[3, H, W]`` to CLIP states ``[1, 257, clip_dim]``; ``clip_features`` are fixed CLIP states for
    every chunk (e.g. of the one reference image); none when both are absent. Instead of states, encoders
    (:mod:`talkgen_core.encoders`, needs ``talkgen[encoders]``): ``text_encoder`` (umT5-XXL, e.g.
    ``umt5_xxl_fp16.safetensors``; loaded on ``text_encoder_device``, default ``device``, and released once
    ``prompt`` and ``negative_prompt`` are encoded; None prompts: the empty prompt and InfiniteTalk's default
    negative prompt; ``tokenizer``: a ``spiece.model`` for files that carry none), ``clip_vision``
    (``clip_vision_h.safetensors``: each chunk's reference frame -> 257 tokens). ``job_dir`` + ``resume`` make
    the run resumable.
    ``job_root`` instead: a parent folder in which the run gets the subfolder named by its job key (a hash of
    the inputs and settings, :func:`~talkgen_core.sampling.jobdir.job_key`) and resumes whatever is there, so
    an identical re-run continues with no editing and any other job gets a folder of its own. Either way the
    job folder is locked for the run (a second process on it gets :class:`~talkgen_core.files.lock.FolderInUse`).
    ``threads``: torch CPU threads during the run; None picks 1 for the demo model on the CPU (its tiny
    convolutions gain nothing from more threads, and OpenMP threads spinning on a busy machine made runs
    ~10x slower in our measurements) and leaves the setting alone otherwise.
    ``strategy``: the long-video strategy (``infinitetalk``, ``sliding-window``, ``memory-bank``;
    :mod:`talkgen_core.sampling.strategies`) with its own parameters, None = its default: ``overlap_frames``
    (sliding-window), ``bank_size``, ``bank_every``, ``memory_sigma`` (memory-bank); another strategy's parameters
    are ignored. The embedded refiner's route (:mod:`talkgen_core.refine`) runs its own ``refiner`` strategy with
    ``condition_noise`` and ``landmarks`` (the pose's detector). The strategy and all its parameters are part of
    the job key, so a resume never mixes strategies.
    ``offload_blocks``: that many DiT blocks stay in CPU memory and are copied to the device ahead of use
    (``models/block_swap.py``; same output). ``step_cache``: the step-cache threshold, 0 = off
    (``models/step_cache.py``). ``sequence_parallel``: ranks of the initialised default process group that
    split each DiT forward (``models/sequence_parallel.py``; every rank calls generate the same way).
    ``face_crop``: "auto" renders a still picture's one face, when the demo model draws it and it is not framed
    like a portrait (moved or smaller), in the square window that frames it so and pastes the frames back
    (:mod:`talkgen_core.conditioning.face_window`); "off" always renders the whole frame.
    """
    started = time.perf_counter()
    check_generate_call(
        dict(fps=fps, size=size, preset=preset, steps=steps, shift=shift, solver=solver, text_cfg=text_cfg,
             audio_cfg=audio_cfg, chunk_frames=chunk_frames, context_frames=context_frames, seed=seed,
             context_mode=context_mode, colour_strength=colour_strength, sdedit_strength=sdedit_strength,
             reference_anchor=reference_anchor, audio_scale=audio_scale, threads=threads, strategy=strategy,
             overlap_frames=overlap_frames, bank_size=bank_size, bank_every=bank_every, memory_sigma=memory_sigma,
             condition_noise=condition_noise, landmarks=landmarks, prompt=prompt, negative_prompt=negative_prompt, text_encoder=text_encoder, tokenizer=tokenizer,
             clip_vision=clip_vision, offload_blocks=offload_blocks, step_cache=step_cache,
             sequence_parallel=sequence_parallel, face_crop=face_crop),
        image, images, keyframe_times, video,
    )  # before any model is loaded or audio encoded: a bad input fails in a second, not after the audio phase
    if anchor_image is not None:
        if video is None:
            raise ValueError("anchor_image replaces the references of a source video; give video= with it, or pass "
                             "the picture as image=")
        to_pixels(anchor_image)  # read now, like the other pictures
    own = models.sampling_preset if models is not None else None  # e.g. the distilled demo's grid
    sampling = get_sampling_preset(own if preset in (None, DEFAULT_PRESET) and own else preset).override(
        steps=steps, shift=shift, solver=solver, text_cfg=text_cfg, audio_cfg=audio_cfg, chunk_frames=chunk_frames,
        context_frames=context_frames)
    steps, shift, solver, text_cfg, audio_cfg = (sampling.steps, sampling.shift, sampling.solver, sampling.text_cfg,
                                                 sampling.audio_cfg)
    chunk_frames, context_frames = sampling.chunk_frames, sampling.context_frames
    if out is not None:  # writing the output must never destroy an input
        refuse_overwriting_inputs(out, _input_files(image, images, video, audio, anchor_image))
    if job_dir is not None and job_root is not None:
        raise ValueError("give job_dir (the job folder itself) or job_root (a parent for per-job folders), not both")
    device = torch.device(device) if device is not None else torch.device("cpu")
    models = models or load_demo_models(device)
    if hasattr(models.dit, "chunk_condition") != (strategy == "refiner"):
        raise ValueError("the embedded refiner refines a finished video (refine_video, the refine command, TalkGen "
                         "Refiner) and nothing else runs the refiner strategy" if strategy != "refiner" else
                         "the refiner strategy needs the embedded refiner model (talkgen_core.refine), not a DiT")
    if isinstance(models.vae, nn.Module):  # a VAE loaded elsewhere (e.g. a loader node) joins the run's device
        models.vae.to(device)
    if threads is None and models.is_demo and device.type == "cpu":
        threads = 1
    with cpu_threads(threads):
        preset = DEMO_PRESET if models.is_demo else OFFICIAL_PRESET
        if clip_encoder is not None and clip_features is not None:
            raise ValueError("give clip_encoder (per-chunk CLIP) or clip_features (fixed), not both")
        text_context, negative_context, clip_encoder = _encoded_conditioning(
            models, device, text_context, negative_context, clip_encoder, clip_features, prompt=prompt,
            negative_prompt=negative_prompt, text_encoder=text_encoder, tokenizer=tokenizer,
            text_encoder_device=text_encoder_device, clip_vision=clip_vision)
        if clip_features is not None:
            fixed_clip = clip_features
            clip_encoder = lambda reference: fixed_clip  # noqa: E731
        voice = _speech(models, audio, speech, audio_mode, fps, preset.audio_window_s, soundtrack)
        features = voice.features
        _check_audio_fits(models, features)
        references, (height, width) = _references(
            image, images, keyframe_times, video, size, preset.size, reference_anchor,
            sdedit_strength < 1.0 or get_strategy(strategy).needs_source_frames, anchor_image
        )
        if speaker_masks is None and features.shape[0] > 1:  # no regions given: side-by-side columns
            speaker_masks = default_speaker_masks(int(features.shape[0]))
        if hasattr(speaker_masks, "at_size"):  # SpeakerMasks: fitted to the video like the reference image
            audio_scale = speaker_masks.strengths * torch.as_tensor(audio_scale, dtype=torch.float32)
            speaker_masks = speaker_masks.at_size(height, width)
        window = _face_window(face_crop, models, image, references, int(features.shape[0]), speaker_masks)
        if window is not None:  # the model renders the window; its frames are pasted into the picture
            background, side = references.image, min(height, width)
            references = StillReference(window.crop(to_pixels(image), (height, width), side), (side, side))
        held = contextlib.ExitStack()  # the job folder's lock, released however the run ends
        try:
            settings = _stream_settings(preset, (height, width), steps=steps, shift=shift, solver=solver,
                                        text_cfg=text_cfg, audio_cfg=audio_cfg, apg=apg, seed=seed,
                                        context_mode=context_mode, colour_strength=colour_strength,
                                        sdedit_strength=sdedit_strength, strategy=strategy,
                                        timesteps=sampling.timesteps,
                                        strategy_params=strategy_params(strategy, dict(
                                            overlap_frames=overlap_frames, bank_size=bank_size,
                                            bank_every=bank_every, memory_sigma=memory_sigma,
                                            condition_noise=condition_noise, landmarks=landmarks)))
            plan = get_strategy(strategy)(settings.strategy_params).plan(int(features.shape[1]), chunk_frames,
                                                                         context_frames)
            text_dim = models.dit.config.text_dim if hasattr(models.dit, "config") else 1
            conditioning = StreamConditioning(
                audio_features=list(features),
                context=text_context if text_context is not None else torch.zeros(1, 1, text_dim),
                negative_context=negative_context,
                clip_encoder=clip_encoder,
                speaker_masks=speaker_masks,
                audio_scale=audio_scale,
            )
            sampler = StreamingSampler(models.dit, models.vae, plan, fps, references, conditioning, settings, device)

            job = None
            if job_dir is not None or job_root is not None:
                manifest_settings = {
                    "stream": settings.to_dict(), "fps": fps, "size": [height, width], "chunk_frames": chunk_frames,
                    "context_frames": context_frames, "audio_mode": audio_mode, "reference_anchor": reference_anchor,
                    "models": models.names, "random_weights": models.random_weights,
                    **({"face_window": window.to_dict()} if window is not None else {}),
                    **({"clip_vision": _encoder_name(clip_vision)} if clip_vision is not None else {}),
                }  # fmt: skip
                inputs_hash = _inputs_hash(image, images, video, keyframe_times, voice.identity, text_context,
                                           negative_context, clip_features, speaker_masks, audio_scale,
                                           *([to_pixels(anchor_image)] if anchor_image is not None else []))
                folder = Path(job_dir) if job_dir is not None else (
                    Path(job_root) / job_key(manifest_settings, inputs_hash, plan.num_chunks))
                held.enter_context(FolderLock(folder, "job folder"))
                job = JobDir(folder, manifest_settings, inputs_hash, plan.num_chunks,
                             resume=resume or job_root is not None)

            collector = None
            if out is not None:
                sink = Mp4Writer(out, fps=fps, audio=voice.soundtrack.samples, sample_rate=voice.soundtrack.sample_rate)
            elif sink is None:
                sink = collector = FrameCollector()
            if window is not None:
                sink = PastingSink(sink, window, background)
            audio_seconds = voice.seconds
            del voice  # the soundtrack is in the writer's temp file now: keep no copy while rendering
            cache = StepCacheConfig.for_schedule(step_cache, sampler.timesteps) if step_cache else None
            with dit_runtime(models.dit, device, offload_blocks=offload_blocks, step_cache_config=cache,
                             split_sequence=check_sequence_parallel(sequence_parallel)) as stats:
                result = _run_into(sampler, sink, job, progress, cancel)
        finally:
            held.close()
            if isinstance(references, VideoReferences):
                references.close()
        return GenerateResult(
            path=Path(out) if out is not None else None,
            frames=result.frames,
            fps=float(fps),
            chunks=result.chunks,
            replayed_chunks=result.replayed_chunks,
            seconds=time.perf_counter() - started,
            width=width,
            height=height,
            audio_seconds=audio_seconds,
            images=collector.images() if collector is not None else None,
            job_path=job.path if job is not None else None,
            dit_forwards=stats.dit_forwards,
            peak_memory_bytes=stats.peak_memory_bytes,
            memory_kind=stats.memory_kind,
            step_cache_rule=stats.step_cache_rule,
            face_window=window.to_dict() if window is not None else None,
        )
