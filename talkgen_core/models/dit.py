"""``WanDiT``: the audio-conditioned Wan2.1 image-to-video DiT (InfiniteTalk / MultiTalk layout) and
``build_dit``.

Parameter names equal the official state-dict keys (``patch_embedding``, ``text_embedding.{0,2}``,
``time_embedding.{0,2}``, ``time_projection.1``, ``blocks.N.*``, ``head.*``, ``img_emb.proj.*``,
``audio_proj.*``), so official files load with ``load_state_dict(strict=True)`` and no renaming.

Precision: weights stay in their stored dtype; ``compute_dtype`` (fp32 / bf16 / fp16) is what linear layers and
attention run in. The residual stream, timestep embedding, modulation, norms and head run in float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from talkgen_core.models.attention import check_backend
from talkgen_core.models.audio_adapter import AudioProjModel, SpeakerRouting, prepare_speaker_routing
from talkgen_core.models.blocks import BlockInputs, WanBlock, modulated_norm
from talkgen_core.models.compile import compile_blocks, uncompile_blocks
from talkgen_core.models.configs import DiTConfig, get_dit_config
from talkgen_core.models.layers import CoreOperations
from talkgen_core.models.rope import rope_3d_table

COMPUTE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[B] timesteps in [0, 1000] -> float32 [B, dim]: cos half first, then sin; frequencies 10000^(-i/half)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    args = t.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1).float()


class ImageProjection(nn.Module):
    """``img_emb``: LayerNorm, Linear, GELU, Linear, LayerNorm on CLIP-vision states (keys ``proj.{0,1,3,4}``)."""

    def __init__(self, config: DiTConfig, operations: type = CoreOperations) -> None:
        super().__init__()
        ops = operations
        self.proj = nn.Sequential(
            ops.LayerNorm(config.clip_dim),
            ops.Linear(config.clip_dim, config.clip_dim),
            nn.GELU(),
            ops.Linear(config.clip_dim, config.dim),
            ops.LayerNorm(config.dim),
        )

    def forward(self, clip_fea: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[B, N_img, clip_dim] -> [B, N_img, C] in ``dtype``."""
        norm_in, lin1, act, lin2, norm_out = self.proj
        h = lin2(act(lin1(norm_in(clip_fea).to(dtype))))
        return norm_out(h).to(dtype)


class Head(nn.Module):
    """Non-affine LayerNorm, (shift, scale) from ``modulation`` + time embedding, Linear to patch pixels."""

    def __init__(self, config: DiTConfig, operations: type = CoreOperations) -> None:
        super().__init__()
        self.norm = operations.LayerNorm(config.dim, eps=config.eps, elementwise_affine=False)
        self.head = operations.Linear(config.dim, config.out_dim * config.patch_volume)
        self.modulation = nn.Parameter(torch.empty(1, 2, config.dim))

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        """``x`` [B, L, C] float32, ``time_emb`` [B or 1, C] float32 -> [B, L, out_dim * patch_volume] float32."""
        shift, scale = (self.modulation.to(time_emb.device, torch.float32) + time_emb[:, None]).unsqueeze(2).unbind(1)
        return self.head(modulated_norm(self.norm, x, shift, scale))


class WanDiT(nn.Module):
    """Audio-conditioned Wan2.1 I2V DiT. See ``forward`` for the tensor contract.

    ``operations`` are the layer classes (see ``layers.CoreOperations``): the core's by default, a host's to let its
    memory manager load the model layer by layer.
    """

    def __init__(self, config: DiTConfig, operations: type = CoreOperations) -> None:
        super().__init__()
        self.config = config
        c, ops = config, operations
        self.patch_embedding = ops.Conv3d(c.in_dim, c.dim, kernel_size=c.patch_size, stride=c.patch_size)
        self.text_embedding = nn.Sequential(
            ops.Linear(c.text_dim, c.dim), nn.GELU(approximate="tanh"), ops.Linear(c.dim, c.dim)
        )
        self.time_embedding = nn.Sequential(ops.Linear(c.freq_dim, c.dim), nn.SiLU(), ops.Linear(c.dim, c.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), ops.Linear(c.dim, 6 * c.dim))
        self.blocks = nn.ModuleList(WanBlock(c, ops) for _ in range(c.num_layers))
        self.head = Head(c, ops)
        self.img_emb = ImageProjection(c, ops)
        self.audio_proj = AudioProjModel(c, ops)
        self.compute_dtype: torch.dtype = torch.float32
        self.attention_backend = "sdpa"
        self.gradient_checkpointing = False

    # ------------------------------------------------------------------ settings
    def set_compute_dtype(self, dtype: torch.dtype) -> WanDiT:
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute dtype must be one of {COMPUTE_DTYPES}, got {dtype}")
        self.compute_dtype = dtype
        return self

    def set_attention_backend(self, name: str) -> WanDiT:
        self.attention_backend = check_backend(name)
        return self

    def set_compile(self, enabled: bool = True, **options: Any) -> WanDiT:
        """``torch.compile`` each block's forward (``models/compile.py``; ``options`` go to torch.compile), or
        run eagerly again. Hooks on the blocks (cancel checks, block swap) stay outside the compiled code."""
        if enabled:
            compile_blocks(self, **options)
        else:
            uncompile_blocks(self)
        return self

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator | None = None) -> WanDiT:
        """Random init close to Wan's (xavier linears, N(0, .02) embeddings, unit norms).

        Unlike Wan, the head is not zeroed and linear biases are small random values instead of zeros, so an
        untrained model gives non-trivial outputs and "null audio" (zero features) still yields audio tokens.
        """
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv3d)):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                if module.bias is not None:
                    nn.init.normal_(module.bias, std=0.02, generator=generator)
            elif isinstance(getattr(module, "weight", None), nn.Parameter):  # a norm (the core's or a host's)
                module.weight.fill_(1.0)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
        for seq in (self.text_embedding, self.time_embedding):
            for layer in seq:
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=0.02, generator=generator)
        for name, param in self.named_parameters():
            if name.endswith("modulation"):
                param.copy_(torch.randn(param.shape, generator=generator, device=param.device) / self.config.dim**0.5)
        return self

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        x: torch.Tensor,  # [B, z, T, H, W] noisy latent
        t: torch.Tensor,  # [B] (or scalar) time in [0, 1000]
        context: torch.Tensor,  # [B, L_txt, text_dim]
        cond: torch.Tensor,  # [B, 4 + z, T, H, W] mask | conditioning latent
        clip_fea: torch.Tensor | None = None,  # [B, N_img, clip_dim]
        audio: torch.Tensor | None = None,  # [B, P, F, W, L, D], F = 4 (T - 1) + 1
        speaker_masks: torch.Tensor | None = None,  # [P, h, w]
        audio_scale: float | Sequence[float] | torch.Tensor = 1.0,
        speaker_routing: str = "auto",  # "auto" (lrope for 2 speakers, mask beyond), "lrope" or "mask"
    ) -> torch.Tensor:  # [B, z, T, H, W] float32 velocity
        """Predict the flow-matching velocity ``noise - x0`` for one chunk.

        ``clip_fea=None`` drops the image branch (text-only context; any number of image tokens is accepted
        otherwise). ``audio=None`` skips audio attention entirely, while all-zero audio is the "null audio" of
        audio guidance (the adapter's biases still produce tokens). Speakers are routed as described in
        ``audio_adapter``: one speaker needs no masks; two use label RoPE unless ``speaker_routing="mask"``;
        more are mask-routed. ``audio_scale`` scales the audio residual, per speaker when given as [P].
        Every batch item is independent, so guidance branches can share one call.
        """
        cfg = self.config
        cd = self.compute_dtype
        b, frames, height, width = self._check_inputs(x, t, context, cond, clip_fea, audio)
        tokens = self.patch_embedding(torch.cat([x, cond], dim=1).to(cd))  # [B, C, T, h, w]
        grid = (tokens.shape[2], tokens.shape[3], tokens.shape[4])
        h = tokens.flatten(2).transpose(1, 2).float().contiguous()  # [B, L, C] residual stream, row-major

        t = t.reshape(-1)
        if t.numel() > 1 and bool(torch.all(t == t[0])):
            t = t[:1]  # one timestep for the batch: modulation broadcasts and fuses into the norms
        time_emb = self.time_embedding(sinusoidal_embedding(t, cfg.freq_dim))  # [B or 1, C] float32
        time_mod = self.time_projection(time_emb).unflatten(1, (6, cfg.dim))  # [B or 1, 6, C] float32

        text = F.pad(context, (0, 0, 0, cfg.text_len - context.shape[1]))  # zero-pad to text_len
        text = self.text_embedding(text.to(cd))
        image = None if clip_fea is None else self.img_emb(clip_fea, cd)

        audio_tokens, routing = None, None
        if audio is not None:
            audio_tokens, routing = self._audio_tokens(audio, grid, speaker_masks, audio_scale, speaker_routing)

        rope = rope_3d_table(grid, cfg.head_dim, cfg.rope_theta, h.device)  # [L, head_dim / 2] complex64
        inputs = BlockInputs(
            time_mod=time_mod, text=text, image=image, rope=rope, grid=grid,
            audio=audio_tokens, routing=routing, compute_dtype=cd, backend=self.attention_backend,
        )  # fmt: skip
        h = self.run_blocks(h, inputs)
        out = self.head(h, time_emb)  # [B, L, p_t * p_h * p_w * z]
        return self._unpatchify(out, grid)

    def run_blocks(self, h: torch.Tensor, inputs: BlockInputs) -> torch.Tensor:
        """The transformer blocks on the residual stream ``h`` [B, L, C] float32 -> same.

        The one seam that run-time transforms wrap (``models/step_cache.py`` skips it, ``models/sequence_parallel.py``
        shards it over ranks) by setting an instance attribute of this name; see ``models/seams.py``.
        """
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h = checkpoint(block, h, inputs, use_reentrant=False)
            else:
                h = block(h, inputs)
        return h

    def _audio_tokens(
        self,
        audio: torch.Tensor,
        grid: tuple[int, int, int],
        speaker_masks: torch.Tensor | None,
        audio_scale: float | Sequence[float] | torch.Tensor,
        speaker_routing: str,
    ) -> tuple[torch.Tensor, SpeakerRouting]:
        """[B, P, F, W, L, D] windows -> tokens [B, N_t, P * M, C_a] (speakers along tokens) and routing."""
        b, speakers = audio.shape[:2]
        tokens = self.audio_proj(audio.flatten(0, 1).to(self.compute_dtype))  # [B*P, N_t, M, C_a] float32
        n_t, m, c_a = tokens.shape[1:]
        tokens = tokens.view(b, speakers, n_t, m, c_a).transpose(1, 2).reshape(b, n_t, speakers * m, c_a)
        routing = prepare_speaker_routing(
            self.config, speakers, (grid[1], grid[2]), speaker_masks, audio_scale, speaker_routing, audio.device
        )
        return tokens.to(self.compute_dtype), routing

    def _unpatchify(self, out: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """[B, L, p_t * p_h * p_w * z] (channel innermost) -> [B, z, T, H, W]."""
        pt, ph, pw = self.config.patch_size
        f, gh, gw = grid
        z = self.config.out_dim
        out = out.view(out.shape[0], f, gh, gw, pt, ph, pw, z)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)  # [B, z, f, pt, h, ph, w, pw]
        return out.reshape(out.shape[0], z, f * pt, gh * ph, gw * pw)

    def _check_inputs(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        cond: torch.Tensor,
        clip_fea: torch.Tensor | None,
        audio: torch.Tensor | None,
    ) -> tuple[int, int, int, int]:
        cfg = self.config
        if x.dim() != 5 or x.shape[1] != cfg.out_dim:
            raise ValueError(f"x must be [B, {cfg.out_dim}, T, H, W], got {tuple(x.shape)}")
        b, _, frames, height, width = x.shape
        pt, ph, pw = cfg.patch_size
        if frames % pt or height % ph or width % pw:
            raise ValueError(
                f"latent T, H, W = {frames}, {height}, {width} must be divisible by the patch size {cfg.patch_size}"
            )
        want_cond = (b, cfg.in_dim - cfg.out_dim, frames, height, width)
        if tuple(cond.shape) != want_cond:
            raise ValueError(
                f"cond must be {list(want_cond)} (4 mask + {cfg.out_dim} latent channels), got {list(cond.shape)}"
            )
        if t.numel() not in (1, b):
            raise ValueError(f"t must hold 1 or B={b} timesteps, got shape {tuple(t.shape)}")
        if context.dim() != 3 or context.shape[0] != b or context.shape[2] != cfg.text_dim:
            raise ValueError(f"context must be [{b}, L_txt, {cfg.text_dim}], got {tuple(context.shape)}")
        if context.shape[1] > cfg.text_len:
            raise ValueError(
                f"context has {context.shape[1]} tokens, more than text_len {cfg.text_len}; trim the prompt states"
            )
        if clip_fea is not None and (
            clip_fea.dim() != 3 or (clip_fea.shape[0], clip_fea.shape[2]) != (b, cfg.clip_dim)
        ):
            raise ValueError(f"clip_fea must be [{b}, N_img, {cfg.clip_dim}] or None, got {tuple(clip_fea.shape)}")
        if audio is not None:
            want = (cfg.vae_scale * (frames - 1) + 1, cfg.audio_window, cfg.audio_layers, cfg.audio_dim)
            if audio.dim() != 6 or audio.shape[0] != b or tuple(audio.shape[2:]) != want:
                raise ValueError(
                    f"audio must be [{b}, P, {want[0]}, {want[1]}, {want[2]}, {want[3]}] "
                    f"(per-video-frame windows for {frames} latent frames), got {tuple(audio.shape)}"
                )
        return b, frames, height, width


def build_dit(
    name_or_config: str | DiTConfig,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    seed: int | None = 0,
    operations: type = CoreOperations,
) -> WanDiT:
    """Build a DiT by registry name or config.

    ``device="meta"`` allocates nothing (for loading with ``assign=True``). Otherwise weights are randomly
    initialised from ``seed`` (``None`` = the global RNG) and stored in ``dtype`` (default float32; fp8 dtypes
    are allowed and compute then runs in bf16). ``operations``: the layer classes (``layers.CoreOperations``).
    """
    config = get_dit_config(name_or_config)
    with torch.device("meta"):
        model = WanDiT(config, operations)
    if torch.device(device).type == "meta":
        return model
    dtype = dtype or torch.float32
    compute = dtype if dtype in COMPUTE_DTYPES else torch.bfloat16  # fp8 storage: init and compute in bf16
    model = model.to(dtype=compute).to_empty(device=device)  # allocated once, in the compute dtype
    generator = None
    if seed is not None:
        generator = torch.Generator(device=torch.device(device)).manual_seed(seed)
    model.init_weights(generator)
    if dtype != compute:
        model = model.to(dtype=dtype)
    return model.set_compute_dtype(compute)


def count_parameters(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
