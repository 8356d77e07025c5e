"""Teacher trajectories for step + guidance distillation: where the guided many-step sampler goes from noise.

For one training chunk (a :class:`~talkgen_core.train.batches.DiTBatch` row) the teacher runs exactly what the
streaming sampler runs for a chunk: audio guidance (``GuidedVelocity``, 2 passes), its leading context
latents pinned clean (``pin_leading_frames``, re-written after every step), Euler on the shifted flow grid. The
teacher's grid is its own (e.g. 40 steps at shift 7) with the student's grid points merged in, so the states
at the student's times are points of the teacher's own path, not interpolations. The recorded states are what
the student learns to jump between in one pass per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from talkgen_core.sampling.guidance import GuidanceConfig, GuidedVelocity
from talkgen_core.sampling.solvers import StepInfo, euler
from talkgen_core.sampling.wrappers import ChunkConditioning, DiTVelocity, pin_leading_frames
from talkgen_core.train.batches import DiTBatch


@dataclass(frozen=True)
class TrajectoryBatch:
    """Teacher states of B chunks at the student's K + 1 grid times, with the inputs they were made from."""

    states: Tensor  # [B, K + 1, z, T, h, w]: at student_times[0] (noise) ... student_times[K] = 0 (clean)
    cond: Tensor  # [B, 4 + z, T, h, w]
    audio: Tensor  # [B, P, C, 5, L, D]
    clean: Tensor  # [B, 1, T, 1, 1] bool
    region: Tensor  # [B, 2, T, h, w]
    speaker_masks: Tensor | None  # [B, P, h, w]


def merged_grid(teacher: Tensor, student: Tensor) -> Tensor:
    """The teacher's decreasing time grid with the student's points added (each time once)."""
    merged = torch.unique(torch.cat([teacher.double(), student.double()]))
    return merged.flip(0)


@torch.no_grad()
def teacher_states(
    teacher: nn.Module,
    batch: DiTBatch,
    teacher_grid: Tensor,  # [N + 1] decreasing model times, last 0
    student_grid: Tensor,  # [K + 1] decreasing model times, last 0
    audio_cfg: float,
    generator: torch.Generator,
) -> TrajectoryBatch:
    """Run the guided teacher from fresh noise for every row of ``batch`` and keep its states at the student's
    times. Rows run one at a time through the sampler's own batch-1 velocity (``DiTVelocity``)."""
    grid = merged_grid(teacher_grid, student_grid)
    wanted = {float(t): i for i, t in enumerate(student_grid)}
    rows = []
    for b in range(batch.x0.shape[0]):
        masks = None if batch.speaker_masks is None else batch.speaker_masks[b]
        conditioning = ChunkConditioning(
            cond=batch.cond[b : b + 1], context=torch.zeros(1, 1, teacher.config.text_dim),
            audio=batch.audio[b : b + 1], speaker_masks=masks,
        )  # fmt: skip
        guided = GuidedVelocity(DiTVelocity(teacher, conditioning), GuidanceConfig(text_scale=1.0, audio_scale=audio_cfg))
        k = int(batch.clean[b].sum())
        clean = batch.x0[b : b + 1, :, :k]
        x = torch.randn(batch.x0[b : b + 1].shape, generator=generator)
        x[:, :, :k] = clean
        states: list[Tensor | None] = [None] * len(student_grid)
        states[0] = x.clone()

        def keep(info: StepInfo) -> None:
            info.x[:, :, :k] = clean
            index = wanted.get(float(info.t_next))
            if index is not None:
                states[index] = info.x.clone()

        euler(pin_leading_frames(guided, clean), x, grid, callback=keep)
        if any(s is None for s in states):
            raise ValueError("the student grid must start at the teacher's first time and end at 0")
        rows.append(torch.cat([s for s in states if s is not None]))  # [K + 1, z, T, h, w]
    return TrajectoryBatch(
        states=torch.stack(rows), cond=batch.cond, audio=batch.audio, clean=batch.clean, region=batch.region,
        speaker_masks=batch.speaker_masks,
    )


def jump_targets(trajectories: TrajectoryBatch, student_grid: Tensor, steps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For student step ``steps[b]`` of row b: the input state, its model time [B] and the velocity whose
    Euler step lands on the teacher's next state, ``(x_i - x_(i+1)) / (s_i - s_(i+1))`` with s = t / 1000."""
    index = torch.arange(steps.shape[0])
    x_in = trajectories.states[index, steps]
    x_next = trajectories.states[index, steps + 1]
    t = student_grid.float()[steps]
    ds = (t - student_grid.float()[steps + 1]) / 1000.0
    return x_in, t, (x_in - x_next) / ds.view(-1, 1, 1, 1, 1)
