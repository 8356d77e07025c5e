"""Training configuration of the embedded demo model: one frozen dataclass and a name registry.

"demo" is the recipe that produces the shipped weights (64 x 64 px, the demo size of the pipeline). "smoke"
runs the same stages in seconds for tests and a quick end-to-end check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from talkgen_core.registry import lookup_config
from talkgen_core.sampling.schedules import SHIFT_480P


@dataclass(frozen=True)
class TrainConfig:
    name: str
    # models (registry names of talkgen_core.models / talkgen_core.audio)
    dit: str = "demo"
    vae: str = "demo"
    wav2vec2: str = "demo"
    # synthetic data
    size: int = 64  # frame size in pixels (the pipeline's demo size)
    fps: float = 25.0
    num_clips: int = 128  # training clips, one identity each
    val_clips: int = 4  # held-aside clips (other identities) for the validation loss
    clip_frames: int = 125  # 1 + 4k frames per clip (5 s)
    reference_positions: int = 3  # frames per clip whose fresh stream + condition latents are cached
    vary_placement: bool = False  # solo faces at varied positions and scales (data.solo_placement)
    pair_clips: int = 0  # two-person clips (side by side on a 2 size x size frame, turns and overlaps)
    pair_share: float = 0.0  # share of DiT steps on a batch of two-person clips (two audio streams, label RoPE)
    # chunk geometry (video frames, each 1 + 4k)
    stage1_frames: int = 33  # short clips: audio-lip alignment
    chunk_frames: int = 81  # stage 2: the streaming sampler's chunk
    context_frames: int = 9  # stage 2: frames carried from the previous chunk (clean latents)
    # VAE stage
    vae_crop: int = 32  # image phase: random square crops (pixels); the VAE is convolutional
    # Clip phase (after the image phase): only the decoder's temporal upsampling learns, on whole frames of
    # clips of vae_frames (1 + 4k) frames, vae_batch at a time, encoder frozen. Measured from the shipped VAE
    # (its interpolating start; held-out 85-frame clips, lr 1e-3, batch 4 x 13 frames, ~1.5 s a step): 100
    # steps take L1 from 0.0526 to 0.0481, but the median frame step inside a latent falls from 0.76 to 0.71 of
    # the step between latents (motion bunches at latent boundaries, which chunk seams then show), so the demo
    # recipe leaves the interpolation as it starts (vae_image_share 1.0).
    vae_frames: int = 13
    vae_batch: int = 4
    vae_clip_lr: float = 1e-3
    # Share of the VAE stage on single frames; the rest is the clip phase.
    vae_image_share: float = 1.0
    vae_image_batch: int = 16
    vae_lr: float = 3e-3  # held-out L1 after 6 min of images: 0.074 at 1e-3, 0.046 at 3e-3
    vae_latent_l2: float = 1e-4  # keeps the latent scale bounded before it is normalised away
    vae_mouth_weight: float = 4.0  # extra L1 weight on the mouth (small but what matters most)
    vae_eye_weight: float = 0.0  # extra L1 weight on the eyes and brows (small details a narrow VAE drops)
    # DiT stages
    dit_batch: int = 4
    dit_lr: float = 3e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    face_weight: float = 1.0  # loss weight = 1 + face_weight * face + mouth_weight * mouth (latent coverage)
    mouth_weight: float = 4.0
    audio_dropout: float = 0.15  # share of samples trained with null (zero) audio, for audio guidance
    stage2_continuation: float = 0.7  # share of stage-2 samples that continue the clip's own past
    neutral_reference: float = 0.3  # share of samples whose reference is the neutral portrait
    time_shift: float = SHIFT_480P  # noise levels drawn like the demo sampler's shifted grid
    # The memory-bank strategy's recipe (talkgen_core.sampling.strategies.memory_bank): stage-2 continuations get
    # memory_latents bank latents before the chunk (the reference's own latent, then earlier latents of the
    # clip's own stream, oldest first), and the bank and context latents are noised to memory_sigma, as the
    # sampler does. 0 and 0.0: the shipped recipe (the shipped weights were trained without).
    memory_latents: int = 0
    memory_sigma: float = 0.0
    # time budget: the VAE stage gets vae_share of --minutes; stage 1 gets stage1_share of what is left
    # after the VAE stage and latent caching; stage 2 gets the rest
    vae_share: float = 0.4
    stage1_share: float = 0.3
    # end-of-run check: a held-out face driven through the real pipeline, measured (0 disables)
    eval_video_seconds: float = 6.0
    # bookkeeping
    seed: int = 0
    threads: int = 1  # measured: on a shared 2-core machine one thread was ~8x faster than two
    log_every: int = 10
    eval_every_s: float = 60.0
    checkpoint_every_s: float = 120.0

    def __post_init__(self) -> None:
        for field_name in ("clip_frames", "stage1_frames", "chunk_frames", "context_frames", "vae_frames"):
            value = getattr(self, field_name)
            if value < 1 or (value - 1) % 4:
                raise ValueError(f"{field_name} must be 1 + 4k, got {value}")
        if self.vae_frames > self.clip_frames:
            raise ValueError(f"vae_frames ({self.vae_frames}) cannot exceed clip_frames ({self.clip_frames})")
        if self.clip_frames < self.chunk_frames + 4:
            raise ValueError("clip_frames must exceed chunk_frames by at least 4 (one latent of own past)")
        if self.memory_latents < 0 or not 0.0 <= self.memory_sigma < 1.0:
            raise ValueError(f"memory_latents must be >= 0 and memory_sigma in [0, 1), got {self.memory_latents}, "
                             f"{self.memory_sigma}")
        if self.size % 16:
            raise ValueError(f"size must be a multiple of 16 (VAE 8x times DiT 2x2 patches), got {self.size}")
        if self.pair_clips < 0 or not 0.0 <= self.pair_share <= 1.0 or (self.pair_share > 0) != (self.pair_clips > 0):
            raise ValueError(f"pair_clips ({self.pair_clips}) and pair_share ({self.pair_share}) must be both zero "
                             "or both positive, with pair_share in [0, 1]")
        if not 0 < self.vae_crop <= self.size or self.vae_crop % 8:
            raise ValueError(f"vae_crop must be a multiple of 8 in (0, size], got {self.vae_crop}")


DEMO = TrainConfig(name="demo")

# Demo v2: faces anywhere in the frame, two-person scenes, a wider VAE that keeps the eyes.
DEMO_V2 = replace(
    DEMO,
    name="demo-v2",
    vae="demo-v2",
    num_clips=96,
    reference_positions=2,
    vary_placement=True,
    pair_clips=32,
    pair_share=0.3,
    vae_eye_weight=6.0,
    vae_share=0.3,
    stage1_share=0.25,
)

# Demo v3: the v2 data and model recipe with more faces and twice the two-person clips (held-out identities in
# pairs and faces off the centre were what v2 missed), trained on v2's VAE (``--vae-from``) with two threads.
DEMO_V3 = replace(DEMO_V2, name="demo-v3", num_clips=128, pair_clips=64, pair_share=0.4, threads=2)

SMOKE = replace(
    DEMO,
    name="smoke",
    dit="tiny",
    wav2vec2="tiny",
    size=32,
    num_clips=3,
    val_clips=1,
    clip_frames=25,
    reference_positions=2,
    stage1_frames=9,
    chunk_frames=17,
    context_frames=5,
    vae_batch=1,
    vae_frames=9,
    vae_image_share=0.5,  # both VAE phases run in the smoke run
    vae_image_batch=4,
    vae_crop=32,
    dit_batch=2,
    warmup_steps=5,
    log_every=1,
    eval_every_s=5.0,
    eval_video_seconds=4.0,
    checkpoint_every_s=30.0,
)

# The v2 recipe's stages in seconds: placements, two-person batches, the eye weight.
SMOKE_V2 = replace(SMOKE, name="smoke-v2", vary_placement=True, pair_clips=2, pair_share=0.5, vae_eye_weight=6.0)

TRAIN_CONFIGS: dict[str, TrainConfig] = {c.name: c for c in (DEMO, DEMO_V2, DEMO_V3, SMOKE, SMOKE_V2)}


def get_train_config(name_or_config: str | TrainConfig) -> TrainConfig:
    return lookup_config(TRAIN_CONFIGS, name_or_config, "training")
