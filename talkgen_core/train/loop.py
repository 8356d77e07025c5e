"""The demo model's training run: VAE reconstruction, then the DiT in a two-stage curriculum, on a time budget.

Stages, in order, each on its share of ``minutes``:

1. ``vae``: the "demo" VAE learns to reconstruct synthetic frames, then (if the config gives it time) its
   decoder learns to spread each latent over its four frames (``vae_stage``); its latent statistics are
   folded into its weights and it is frozen.
2. ``stage1``: the latent bank is built first (whole-clip streams, reference conditions, audio features;
   timed as "cache", and the DiT stages share the time left after it), then the "demo" DiT trains on
   short first chunks (audio-lip alignment).
3. ``stage2``: full-length chunks, mostly continuations of the clip's own past with a reference near the
   chunk (``batches``).

With ``pair_clips`` a share ``pair_share`` of the DiT steps (both stages) trains on two-person clips: each
speaker's own voice as a separate audio stream, routed by label RoPE with per-sample speaker masks (the
official multi-speaker recipe), and the loss weighted up on both faces and mouths.

Rendering the synthetic clips ("data") and caching latents ("cache") are timed too and come out of the DiT
stages' share, so the whole run fits in ``minutes`` (the end-of-run evaluation comes after it).

The audio encoder ("demo" wav2vec2) stays at its seeded random initialisation and is not trained: a linear
probe on its features recovers the per-frame audio RMS with R^2 = 0.91 on unseen synthetic speech, so the
information the mouth needs is there, and keeping it fixed lets its features be computed once per clip
(training it jointly would recompute them every step). Only the DiT's audio adapter learns to read them.

With ``vae_from`` (an earlier run's exported VAE of the same config) the VAE stage is skipped and that VAE is
used frozen: a DiT recipe can change without changing the latents that other trained weights (the refiner, its
decoder) were fitted to.

Every stage checkpoints (``state``) and a rerun with ``resume=True`` continues where it stopped: data are
rebuilt deterministically and each batch's randomness depends only on (seed, stage, step). A JSONL log
(``train_log.jsonl``) gets one record per ``log_every`` steps and per evaluation; a progress line goes to
``log_stream``. The finished weights are written to ``<out>/weights/`` under the pipeline's file names, and a
held-out face is rendered through the real pipeline with them and measured (``evaluate``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from talkgen_core.audio.wav2vec2 import build_wav2vec2
from talkgen_core.models.dit import build_dit
from talkgen_core.models.vae import build_vae
from talkgen_core.train.batches import sample_dit_batch
from talkgen_core.train.config import TrainConfig
from talkgen_core.train.data import ClipBank, render_clip_bank, render_pair_bank
from talkgen_core.train.evaluate import evaluate_demo
from talkgen_core.train.latents import LatentBank, build_latent_bank
from talkgen_core.train.objective import flow_matching_loss
from talkgen_core.train.state import EMA, Progress, has_checkpoint, load_checkpoint, save_checkpoint
from talkgen_core.train.vae_stage import (
    fold_latent_normalisation,
    inflate_temporal_init,
    latent_statistics,
    sample_vae_batch,
    train_only_decoder_temporal,
    vae_loss,
)

STAGES = ("vae", "stage1", "stage2")
LOG_FILE = "train_log.jsonl"
VAE_WARMUP_STEPS = 50
FINAL_LR_FRACTION = 0.1
DECAY_SHARE = 0.3  # the last 30 % of a stage's time decays the learning rate linearly
RUNTIME_FIELDS = frozenset({"threads", "log_every", "eval_every_s", "checkpoint_every_s"})  # may change on resume


@dataclass(frozen=True)
class TrainSummary:
    out_dir: str
    weights_dir: str
    steps: dict[str, int]
    seconds: dict[str, float]
    final_loss: dict[str, float]  # mean training loss over each stage's last logged window
    final_val_loss: float | None
    evaluation: dict | None  # held-out face through the pipeline (evaluate.py); None when disabled


class RunLog:
    """JSONL records plus a throttled one-line progress display."""

    def __init__(self, path: Path, stream: TextIO | None) -> None:
        self.path = path
        self.stream = stream
        self._last_line = 0.0

    def record(self, **fields: object) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(fields) + "\n")

    def progress(self, text: str, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if force or now - self._last_line >= 1.0:
            self.stream.write("\r" + text.ljust(100) + ("\n" if force else ""))
            self.stream.flush()
            self._last_line = now


def _lr_factor(step: int, warmup: int, elapsed: float, budget: float) -> float:
    """Linear warm-up over ``warmup`` steps, constant, then a linear decay over the stage's last time share."""
    warm = min(1.0, (step + 1) / max(warmup, 1))
    start_decay = budget * (1.0 - DECAY_SHARE)
    if budget <= 0 or elapsed <= start_decay:
        return warm
    frac = min(1.0, (elapsed - start_decay) / (budget * DECAY_SHARE))
    return warm * (1.0 - (1.0 - FINAL_LR_FRACTION) * frac)


def _batch_generator(seed: int, stage: str, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + STAGES.index(stage) * 100_003 + step)


def _fmt_time(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class Trainer:
    """Holds the models, data and progress of one run; ``run`` drives the stages."""

    def __init__(self, config: TrainConfig, out_dir: Path, minutes: float, log_stream: TextIO | None,
                 vae_from: Path | None = None) -> None:
        self.config = config
        self.vae_from = None if vae_from is None else str(vae_from)
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.total_s = minutes * 60.0
        self.log = RunLog(self.out_dir / LOG_FILE, log_stream)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.vae = build_vae(config.vae)
            inflate_temporal_init(self.vae)
            self.wav2vec2 = build_wav2vec2(config.wav2vec2)
        if vae_from is not None:
            load_trained_vae(self.vae, vae_from, config.vae)
        self.dit = build_dit(config.dit, seed=config.seed)
        self.ema = EMA(self.dit, config.ema_decay)
        self.vae_opt = torch.optim.AdamW(self.vae.parameters(), lr=config.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
        self.dit_opt = torch.optim.AdamW(self.dit.parameters(), lr=config.dit_lr, betas=(0.9, 0.99), weight_decay=0.01)
        self.progress = Progress(stage="vae" if vae_from is None else "stage1")
        self.train_clips: ClipBank | None = None
        self.val_clips: ClipBank | None = None
        self.pair_clips: ClipBank | None = None
        self.train_latents: LatentBank | None = None
        self.val_latents: LatentBank | None = None
        self.pair_latents: LatentBank | None = None
        self.final_loss: dict[str, float] = {}
        self.final_val_loss: float | None = None
        self.evaluation: dict | None = None

    # ------------------------------------------------------------------ persistence
    def _modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae, "wav2vec2": self.wav2vec2, "dit": self.dit, "dit_ema": self.ema.module}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.vae_opt, "dit": self.dit_opt}

    def save(self) -> None:
        extra = {"config": asdict(self.config), "ema_updates": self.ema.updates, "vae_from": self.vae_from}
        save_checkpoint(self.out_dir, self._modules(), self._optimizers(), self.progress, extra)

    def restore(self) -> None:
        self.progress, extra = load_checkpoint(self.out_dir, self._modules(), self._optimizers())
        self.ema.updates = int(extra.get("ema_updates", 0))
        saved = extra.get("config", {})
        current = asdict(self.config)
        changed = sorted(k for k in saved if k not in RUNTIME_FIELDS and saved[k] != current.get(k))
        if changed:
            raise ValueError(f"checkpoint in {self.out_dir} was made with a different config (fields: {changed})")
        if extra.get("vae_from") != self.vae_from:
            raise ValueError(f"checkpoint in {self.out_dir} was made with vae_from={extra.get('vae_from')!r}; "
                             f"resume with the same --vae-from")

    # ------------------------------------------------------------------ data
    def _ensure_clips(self) -> None:
        """Render the clips once per process; the time goes to the "data" account, so the whole run, rendering
        included, fits in ``minutes`` (the DiT stages get what is left)."""
        if self.train_clips is not None:
            return
        started = time.monotonic()
        self.log.progress("[data] rendering the synthetic talking-face clips", force=True)
        self.train_clips = render_clip_bank(self.config, 0, self.config.num_clips)
        self.val_clips = render_clip_bank(self.config, self.config.num_clips, self.config.val_clips)
        if self.config.pair_clips:
            self.pair_clips = render_pair_bank(self.config, 0, self.config.pair_clips)
        self.progress.seconds["data"] = self.progress.seconds.get("data", 0.0) + time.monotonic() - started

    def _ensure_latents(self) -> None:
        """Build the latent banks once per process; the time goes to the "cache" account, not to a stage."""
        if self.train_latents is not None:
            return
        started = time.monotonic()
        self._ensure_clips()
        assert self.train_clips is not None and self.val_clips is not None
        self.vae.eval().requires_grad_(False)
        self.log.progress("[cache] encoding clips with the frozen VAE and audio encoder", force=True)
        self.train_latents = build_latent_bank(self.vae, self.wav2vec2, self.train_clips, self.config)
        self.val_latents = build_latent_bank(self.vae, self.wav2vec2, self.val_clips, self.config)
        if self.pair_clips is not None:
            self.pair_latents = build_latent_bank(self.vae, self.wav2vec2, self.pair_clips, self.config)
        seconds = time.monotonic() - started
        self.progress.seconds["cache"] = self.progress.seconds.get("cache", 0.0) + seconds
        self.log.record(stage="cache", event="latent_bank_ready", seconds=round(seconds, 1),
                        clips=self.train_latents.num_clips + self.val_latents.num_clips
                        + (self.pair_latents.num_clips if self.pair_latents is not None else 0))

    # ------------------------------------------------------------------ stages
    def _budget(self, stage: str) -> float:
        if stage not in self.progress.budget_s:
            spent = sum(self.progress.seconds.values())
            if stage == "vae":
                budget = self.config.vae_share * self.total_s
            elif stage == "stage1":  # called after caching, so the share is of the time really left
                budget = self.config.stage1_share * max(self.total_s - spent, 0.0)
            else:
                budget = max(self.total_s - spent, 0.0)
            self.progress.budget_s[stage] = budget
        return self.progress.budget_s[stage]

    def run(self) -> TrainSummary:
        torch.set_num_threads(self.config.threads)
        remaining = STAGES[STAGES.index(self.progress.stage) :] if self.progress.stage in STAGES else ()
        for stage in remaining:
            self.progress.stage = stage
            if stage == "vae":
                self._run_vae()
            else:
                self._run_dit(stage)
            next_index = STAGES.index(stage) + 1
            self.progress.stage = STAGES[next_index] if next_index < len(STAGES) else "done"
            self.save()
        self.export()
        self.evaluate()
        return TrainSummary(
            out_dir=str(self.out_dir),
            weights_dir=str(self.out_dir / "weights"),
            steps=dict(self.progress.step),
            seconds=dict(self.progress.seconds),
            final_loss=dict(self.final_loss),
            final_val_loss=self.final_val_loss,
            evaluation=self.evaluation,
        )

    def _run_vae(self) -> None:
        cfg, stage = self.config, "vae"
        self._ensure_clips()
        assert self.train_clips is not None
        budget = self._budget(stage)
        self.vae.train().requires_grad_(True)
        step = self.progress.step.get(stage, 0)
        spent = self.progress.seconds.get(stage, 0.0)
        started, last_save = time.monotonic() - spent, time.monotonic()
        window: list[float] = []
        clip_phase = False
        while time.monotonic() - started < budget or step == 0:
            elapsed = time.monotonic() - started
            single = elapsed < cfg.vae_image_share * budget
            if not single and not clip_phase:
                train_only_decoder_temporal(self.vae)
                clip_phase = True
            base_lr = cfg.vae_lr if single else cfg.vae_clip_lr
            for group in self.vae_opt.param_groups:
                group["lr"] = base_lr * _lr_factor(step, VAE_WARMUP_STEPS, elapsed, budget)
            batch = sample_vae_batch(self.train_clips, cfg, _batch_generator(cfg.seed, stage, step), single)
            loss, l1 = vae_loss(self.vae, batch, cfg.vae_latent_l2)
            self.vae_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.vae.parameters(), cfg.grad_clip)
            self.vae_opt.step()
            step += 1
            l1_value = float(l1.detach())
            window.append(l1_value)
            self.progress.step[stage] = step
            self.progress.seconds[stage] = time.monotonic() - started
            if step % cfg.log_every == 0:
                self.log.record(stage=stage, phase="image" if single else "clip", step=step,
                                l1=sum(window) / len(window), lr=self.vae_opt.param_groups[0]["lr"],
                                elapsed_s=round(self.progress.seconds[stage], 1))
                self.final_loss[stage] = sum(window) / len(window)
                window.clear()
            self.log.progress(f"[vae] step {step} L1 {l1_value:.4f} {_fmt_time(elapsed)}/{_fmt_time(budget)}")
            if time.monotonic() - last_save > cfg.checkpoint_every_s:
                self.save()
                last_save = time.monotonic()
        if window:
            self.final_loss[stage] = sum(window) / len(window)
        self.vae.eval().requires_grad_(False)
        mean, std = latent_statistics(self.vae, self.train_clips)
        fold_latent_normalisation(self.vae, mean, std)
        self.log.record(stage=stage, event="folded_latent_stats", mean=mean.tolist(), std=std.tolist())
        self.log.progress(f"[vae] done: {step} steps, L1 {self.final_loss.get(stage, float('nan')):.4f}", force=True)

    @torch.no_grad()
    def _val_loss(self, stage_index: int) -> float:
        assert self.val_latents is not None
        cfg = self.config
        batch = sample_dit_batch(self.val_latents, cfg, stage_index, torch.Generator().manual_seed(12345))
        model = self.ema.module.eval()
        result = flow_matching_loss(
            model, batch, torch.Generator().manual_seed(54321), shift=cfg.time_shift, audio_dropout=0.0,
            face_weight=cfg.face_weight, mouth_weight=cfg.mouth_weight,
        )  # fmt: skip
        return float(result.loss)

    def _run_dit(self, stage: str) -> None:
        cfg = self.config
        stage_index = 1 if stage == "stage1" else 2
        self._ensure_latents()
        assert self.train_latents is not None
        started = time.monotonic() - self.progress.seconds.get(stage, 0.0)
        budget = self._budget(stage)
        self.dit.train()
        step = self.progress.step.get(stage, 0)
        global_step = sum(self.progress.step.get(s, 0) for s in ("stage1", "stage2"))
        last_save = last_eval = time.monotonic()
        window: list[float] = []
        while time.monotonic() - started < budget or step == 0:
            elapsed = time.monotonic() - started
            factor = _lr_factor(global_step, cfg.warmup_steps, elapsed, budget if stage == "stage2" else math.inf)
            for group in self.dit_opt.param_groups:
                group["lr"] = cfg.dit_lr * factor
            gen = _batch_generator(cfg.seed, stage, step)
            pair = self.pair_latents is not None and float(torch.rand((), generator=gen)) < cfg.pair_share
            batch = sample_dit_batch(self.pair_latents if pair else self.train_latents, cfg, stage_index, gen)
            result = flow_matching_loss(
                self.dit, batch, gen, shift=cfg.time_shift, audio_dropout=cfg.audio_dropout,
                face_weight=cfg.face_weight, mouth_weight=cfg.mouth_weight,
            )  # fmt: skip
            self.dit_opt.zero_grad(set_to_none=True)
            result.loss.backward()
            torch.nn.utils.clip_grad_norm_(self.dit.parameters(), cfg.grad_clip)
            self.dit_opt.step()
            self.ema.update(self.dit)
            step += 1
            global_step += 1
            loss_value = float(result.loss.detach())
            window.append(loss_value)
            self.progress.step[stage] = step
            self.progress.seconds[stage] = time.monotonic() - started
            if step % cfg.log_every == 0:
                mean_loss = sum(window) / len(window)
                self.log.record(stage=stage, step=step, loss=mean_loss, mse=float(result.plain_mse.detach()),
                                lr=self.dit_opt.param_groups[0]["lr"], elapsed_s=round(self.progress.seconds[stage], 1))
                self.final_loss[stage] = mean_loss
                window.clear()
            if time.monotonic() - last_eval > cfg.eval_every_s:
                self.final_val_loss = self._val_loss(stage_index)
                self.dit.train()
                self.log.record(stage=stage, step=step, val_loss=self.final_val_loss)
                last_eval = time.monotonic()
            self.log.progress(
                f"[{stage}] step {step} loss {loss_value:.4f} "
                f"val {self.final_val_loss if self.final_val_loss is not None else float('nan'):.4f} "
                f"{_fmt_time(elapsed)}/{_fmt_time(budget)}"
            )
            if time.monotonic() - last_save > cfg.checkpoint_every_s:
                self.save()
                last_save = time.monotonic()
        if window:
            self.final_loss[stage] = sum(window) / len(window)
        self.final_val_loss = self._val_loss(stage_index)
        self.dit.train()
        self.log.record(stage=stage, step=step, val_loss=self.final_val_loss, event="stage_done")
        self.log.progress(f"[{stage}] done: {step} steps, val loss {self.final_val_loss:.4f}", force=True)

    # ------------------------------------------------------------------ output
    def evaluate(self) -> None:
        """Generate a held-out face through the pipeline with the EMA weights and log the quality metrics."""
        if self.config.eval_video_seconds <= 0:
            return
        self.dit.eval()
        result = evaluate_demo(
            self.ema.module.eval(), self.vae.eval(), self.wav2vec2, self.config.size,
            seconds=self.config.eval_video_seconds, fps=self.config.fps,
        )  # fmt: skip
        self.evaluation = result.to_dict()
        self.log.record(stage="evaluate", **self.evaluation)
        summary_path = self.out_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        summary["evaluation"] = self.evaluation
        summary_path.write_text(json.dumps(summary, indent=1))
        self.log.progress(
            f"[evaluate] held-out face: best lag {result.best_lag}, correlation {result.peak_correlation:.2f}, "
            f"face colour drift {result.face_colour_slope:.2f} dE/s",
            force=True,
        )

    def export(self) -> Path:
        """Write the inference weights (EMA DiT, folded VAE, fixed wav2vec2) under the pipeline's names."""
        from talkgen_core.models.demo import CONFIG_METADATA_KEY, DEMO_WEIGHT_FILES

        weights_dir = self.out_dir / "weights"
        weights_dir.mkdir(parents=True, exist_ok=True)
        parts = {"dit": (self.ema.module, self.config.dit), "vae": (self.vae, self.config.vae),
                 "wav2vec2": (self.wav2vec2, self.config.wav2vec2)}
        for part, (module, config_name) in parts.items():
            tensors = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
            save_file(tensors, str(weights_dir / DEMO_WEIGHT_FILES[part]), metadata={CONFIG_METADATA_KEY: config_name})
        summary = {"config": asdict(self.config), "vae_from": self.vae_from, "progress": asdict(self.progress),
                   "final_loss": self.final_loss, "final_val_loss": self.final_val_loss}
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        return weights_dir


def load_trained_vae(vae: nn.Module, path: Path, config_name: str) -> None:
    """Load an exported VAE file into ``vae`` (folded latent statistics included), refusing another config's."""
    from talkgen_core.models.demo import CONFIG_METADATA_KEY

    if not path.is_file():
        raise FileNotFoundError(f"--vae-from {path}: no such file; give an exported demo-vae.safetensors")
    with safe_open(str(path), framework="pt") as f:
        made_with = (f.metadata() or {}).get(CONFIG_METADATA_KEY)
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if made_with != config_name:
        raise ValueError(f"--vae-from {path} holds a {made_with!r} VAE; this recipe trains on {config_name!r}")
    vae.load_state_dict(tensors, strict=True)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    minutes: float,
    resume: bool = False,
    log_stream: TextIO | None = sys.stderr,
    vae_from: str | Path | None = None,
) -> TrainSummary:
    """Run (or, with ``resume``, continue) the demo model's training into ``out_dir``. ``vae_from``: a VAE file
    exported by an earlier run of the same VAE config, used frozen instead of the VAE stage (so weights trained
    on that VAE's latents, such as the refiner's, stay valid; ``minutes`` is then the DiT stages' budget)."""
    if minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    trainer = Trainer(config, Path(out_dir), minutes, log_stream, None if vae_from is None else Path(vae_from))
    if resume and has_checkpoint(trainer.out_dir):
        trainer.restore()
    elif has_checkpoint(trainer.out_dir):
        raise FileExistsError(f"{out_dir} already holds a checkpoint; pass resume=True (--resume) or use a new folder")
    return trainer.run()
