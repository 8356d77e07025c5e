"""Step + guidance distillation of the demo DiT: a student that takes a few steps, one model pass each.

    python -m talkgen_core.train.distill --teacher talkgen_core/weights --minutes 30 --out runs/distill

Method: trajectory distillation of the guided teacher (Luhman & Luhman 2021, per step as in TRACT, Berthelot
et al. 2023). The teacher runs the official recipe on training chunks (``trajectories.teacher_states``: 40
Euler steps at shift 7, audio guidance 4, so two passes per step, context latents pinned); its states at the
student's few grid times are kept. The student, initialised from the teacher, learns for each of its steps
the velocity whose single Euler step lands on the teacher's next state, conditioned on the real audio only:
guidance is folded into the weights, so a student step is one pass.

Why this one: on two CPU cores the teacher's 80 passes per chunk are the expensive part, and here they run
once per training chunk, offline, in a fixed share of the budget; the student phase then costs one pass per
sample. Progressive distillation would repeat that cost for each of its log2(40 / K) halvings, consistency
distillation needs the teacher online at every step, and DMD needs a second (fake-score) network in training.
With deterministic teacher paths the regression target is well defined, so a plain weighted MSE suffices
(the region weights of the DiT stages: face and mouth up-weighted, context latents out of the loss).

The student is written as ``demo-dit-distilled.safetensors`` with its grid in the file's metadata, and the
run record (config, steps, minutes, evaluation against the teacher) as ``demo-distill.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from talkgen_core.models.demo import CONFIG_METADATA_KEY, DEMO_STUDENT_FILE, build_demo_networks, demo_config_names
from talkgen_core.registry import lookup_config
from talkgen_core.sampling.presets import get_sampling_preset
from talkgen_core.sampling.schedules import SHIFT_480P, explicit_timesteps, flow_timesteps
from talkgen_core.train.batches import sample_dit_batch
from talkgen_core.train.config import get_train_config
from talkgen_core.train.data import render_clip_bank, render_pair_bank
from talkgen_core.train.latents import LatentBank, build_latent_bank
from talkgen_core.train.objective import region_loss_weights
from talkgen_core.train.state import EMA
from talkgen_core.train.trajectories import TrajectoryBatch, jump_targets, teacher_states

STUDENT_FILE = DEMO_STUDENT_FILE
RECORD_FILE = "demo-distill.json"
STUDENT_PRESET = get_sampling_preset("demo-distilled")  # the grid the shipped student is made for
GRID_METADATA_KEY = "talkgen_student_grid"  # JSON list of the student's model times (last 0)


@dataclass(frozen=True)
class DistillConfig:
    name: str
    data: str = "demo-v2"  # the training recipe whose synthetic clips the trajectories start from
    solo_clips: int = 32
    pair_clips: int = 8
    teacher_steps: int = 40
    teacher_shift: float = SHIFT_480P
    teacher_audio_cfg: float = 4.0
    student_times: tuple[float, ...] = STUDENT_PRESET.timesteps or ()  # before the shift; the grid ends at 0
    student_shift: float = STUDENT_PRESET.shift or 1.0
    trajectory_share: float = 0.45  # share of the budget (after the data) for teacher trajectories
    batch: int = 4
    lr: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    seed: int = 0
    threads: int = 1
    eval_video_seconds: float = 6.0

    def student_grid(self) -> torch.Tensor:
        return explicit_timesteps(self.student_times, self.student_shift)

    def teacher_grid(self) -> torch.Tensor:
        return flow_timesteps(self.teacher_steps, self.teacher_shift)


DEMO_STUDENT = DistillConfig(name="demo")
SMOKE_STUDENT = DistillConfig(name="smoke", data="smoke-v2", solo_clips=2, pair_clips=1, teacher_steps=4,
                              batch=2, warmup_steps=2, eval_video_seconds=0.0)
DISTILL_CONFIGS = {c.name: c for c in (DEMO_STUDENT, SMOKE_STUDENT)}


@dataclass
class DistillRecord:
    config: dict
    teacher: dict  # the teacher's weight folder and config names
    trajectories: dict  # chunks per kind
    steps: int
    seconds: dict
    final_loss: float | None
    evaluation: dict | None


def _latent_banks(teacher, config: DistillConfig) -> dict[str, LatentBank]:
    """Solo and two-person clips of the data recipe, encoded with the teacher's own VAE and audio encoder."""
    data = replace(get_train_config(config.data), num_clips=config.solo_clips, pair_clips=config.pair_clips,
                   pair_share=0.5 if config.pair_clips else 0.0)
    banks = {"solo": build_latent_bank(teacher.vae, teacher.wav2vec2, render_clip_bank(data, 0, config.solo_clips), data)}
    if config.pair_clips:
        pairs = render_pair_bank(data, 0, config.pair_clips)
        banks["pair"] = build_latent_bank(teacher.vae, teacher.wav2vec2, pairs, data)
    return banks


def _concat(parts: list[TrajectoryBatch]) -> TrajectoryBatch:
    masks = None if parts[0].speaker_masks is None else torch.cat([p.speaker_masks for p in parts])  # type: ignore[misc]
    return TrajectoryBatch(*(torch.cat([getattr(p, f) for p in parts]) for f in ("states", "cond", "audio", "clean", "region")),
                           speaker_masks=masks)


def _rows(batch: TrajectoryBatch, index: torch.Tensor) -> TrajectoryBatch:
    return TrajectoryBatch(batch.states[index], batch.cond[index], batch.audio[index], batch.clean[index],
                           batch.region[index], None if batch.speaker_masks is None else batch.speaker_masks[index])


def distill(config: DistillConfig, teacher_dir: Path, out_dir: Path, minutes: float,
            log=sys.stderr) -> DistillRecord:
    """Make the teacher's trajectories for ``trajectory_share`` of the time, then train the student on them."""
    torch.set_num_threads(config.threads)
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    teacher = build_demo_networks("cpu", teacher_dir)
    if teacher.random_weights:
        raise FileNotFoundError(f"no demo weights in {teacher_dir}: distil a trained teacher")
    data_cfg = get_train_config(config.data)
    banks = _latent_banks(teacher, config)
    seconds = {"data": time.monotonic() - started}
    budget = minutes * 60.0 - seconds["data"]

    # 1. teacher trajectories, alternating solo and two-person chunks in the data recipe's proportion
    phase = time.monotonic()
    generator = torch.Generator().manual_seed(config.seed)
    student_grid, teacher_grid = config.student_grid(), config.teacher_grid()
    stored: dict[str, list[TrajectoryBatch]] = {kind: [] for kind in banks}
    sample_cfg = replace(data_cfg, dit_batch=config.batch, memory_latents=0)
    while time.monotonic() - phase < config.trajectory_share * budget or not stored["solo"]:
        kind = "pair" if "pair" in banks and float(torch.rand((), generator=generator)) < data_cfg.pair_share else "solo"
        batch = sample_dit_batch(banks[kind], sample_cfg, 2, generator)
        stored[kind].append(teacher_states(teacher.dit, batch, teacher_grid, student_grid, config.teacher_audio_cfg,
                                           generator))
        made = sum(len(v) for v in stored.values()) * config.batch
        log.write(f"\r[trajectories] {made} chunks, {time.monotonic() - phase:.0f} s")
    pools = {kind: _concat(parts) for kind, parts in stored.items() if parts}
    seconds["trajectories"] = time.monotonic() - phase

    # 2. the student learns each step's jump, one pass, audio conditional only
    phase = time.monotonic()
    student = copy.deepcopy(teacher.dit).train().requires_grad_(True)
    ema = EMA(student, config.ema_decay)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, betas=(0.9, 0.99), weight_decay=0.0)
    text = torch.zeros(config.batch, 1, student.config.text_dim)
    chooser = random.Random(config.seed)
    kinds = [kind for kind, pool in pools.items() for _ in range(pool.states.shape[0])]  # by share of chunks
    steps, window = 0, []
    rest = budget - seconds["trajectories"]
    while time.monotonic() - phase < rest or steps == 0:
        kind = chooser.choice(kinds)
        pool = pools[kind]
        rows = _rows(pool, torch.randint(pool.states.shape[0], (config.batch,), generator=generator))
        which = torch.randint(len(student_grid) - 1, (config.batch,), generator=generator)
        x_in, t, target = jump_targets(rows, student_grid, which)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, (steps + 1) / config.warmup_steps)
        v = student(x_in, t, text[: x_in.shape[0]], rows.cond, audio=rows.audio, speaker_masks=rows.speaker_masks)
        weights = region_loss_weights(rows.region, rows.clean, data_cfg.face_weight, data_cfg.mouth_weight)
        loss = ((v - target).pow(2) * weights).sum() / (weights.sum() * v.shape[1]).clamp_min(1e-8)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
        optimizer.step()
        ema.update(student)
        steps += 1
        window = (window + [float(loss.detach())])[-50:]
        log.write(f"\r[student] step {steps} loss {window[-1]:.4f} {time.monotonic() - phase:.0f}/{rest:.0f} s")
    seconds["student"] = time.monotonic() - phase
    log.write("\n")

    weights_path = out_dir / STUDENT_FILE
    names = demo_config_names(teacher_dir)
    tensors = {k: v.detach().clone().contiguous() for k, v in ema.module.state_dict().items()}
    save_file(tensors, str(weights_path), metadata={
        CONFIG_METADATA_KEY: names["dit"], GRID_METADATA_KEY: json.dumps([float(t) for t in student_grid]),
    })
    evaluation = None
    if config.eval_video_seconds > 0:
        evaluation = evaluate_student(ema.module.eval(), teacher, config)
    record = DistillRecord(
        config=asdict(config), teacher={"weights": str(teacher_dir), "configs": names},
        trajectories={kind: int(pool.states.shape[0]) for kind, pool in pools.items()}, steps=steps,
        seconds={k: round(v, 1) for k, v in seconds.items()}, final_loss=sum(window) / len(window) if window else None,
        evaluation=evaluation,
    )
    (out_dir / RECORD_FILE).write_text(json.dumps(asdict(record), indent=1))
    return record


def evaluate_student(student, teacher, config: DistillConfig) -> dict:
    """The held-out face through the pipeline: the student (its grid, one pass) against the teacher."""
    from talkgen_core.train.evaluate import evaluate_demo

    if config.student_times != STUDENT_PRESET.timesteps or config.student_shift != STUDENT_PRESET.shift:
        raise ValueError(f"the student's grid differs from the {STUDENT_PRESET.name!r} preset it is evaluated with; "
                         "set eval_video_seconds to 0 or update the preset")
    runs = {
        "student": (student, {"preset": STUDENT_PRESET.name}),
        "teacher": (teacher.dit, {"steps": config.teacher_steps, "audio_cfg": config.teacher_audio_cfg}),
    }
    results = {}
    for name, (dit, settings) in runs.items():
        result = evaluate_demo(dit, teacher.vae, teacher.wav2vec2, get_train_config(config.data).size,
                               seconds=config.eval_video_seconds, **settings)
        results[name] = result.to_dict()
    return results


def get_distill_config(name: str) -> DistillConfig:
    return lookup_config(DISTILL_CONFIGS, name, "distillation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m talkgen_core.train.distill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, required=True, help="folder with the teacher's demo weights")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget")
    parser.add_argument("--out", type=Path, required=True, help="folder for the student and its run record")
    parser.add_argument("--config", default="demo", choices=sorted(DISTILL_CONFIGS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's)")
    args = parser.parse_args(argv)
    config = get_distill_config(args.config)
    if args.threads is not None:
        config = replace(config, threads=args.threads)
    record = distill(config, args.teacher, args.out, args.minutes)
    print(json.dumps(asdict(record), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
