"""Step + guidance distillation: teacher trajectories, the student's jump targets, and a short run."""

import json
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from talkgen_core.audio.wav2vec2 import build_wav2vec2
from talkgen_core.models.demo import CONFIG_METADATA_KEY, DEMO_WEIGHT_FILES, DemoWeightsWarning
from talkgen_core.models.dit import build_dit
from talkgen_core.models.vae import build_vae
from talkgen_core.sampling.schedules import flow_timesteps
from talkgen_core.train.batches import sample_dit_batch
from talkgen_core.train.distill import GRID_METADATA_KEY, RECORD_FILE, SMOKE_STUDENT, STUDENT_FILE, distill
from talkgen_core.train.trajectories import jump_targets, merged_grid, teacher_states


@pytest.fixture(scope="module")
def teacher():
    return build_dit("tiny", seed=0).eval()


@pytest.fixture(scope="module")
def batch(latent_bank, smoke_config):
    return sample_dit_batch(latent_bank, replace(smoke_config, dit_batch=2), 2, torch.Generator().manual_seed(0))


def test_the_merged_grid_holds_both_grids_once():
    teacher, student = flow_timesteps(6, 7.0), torch.tensor([1000.0, 500.0, 0.0], dtype=torch.float64)
    merged = merged_grid(teacher, student)
    assert merged.shape[0] == 8 and bool((merged[1:] < merged[:-1]).all())
    assert {float(t) for t in student} <= {float(t) for t in merged}


def test_states_are_points_of_the_teachers_own_path(teacher, batch):
    """Recording at the teacher's own grid points leaves its path unchanged: any sub-grid sees the same final
    state, and the clean context stays exactly clean in every state."""
    grid = flow_timesteps(7, 7.0)
    full = teacher_states(teacher, batch, grid, grid, 4.0, torch.Generator().manual_seed(3))
    sub = teacher_states(teacher, batch, grid, grid[[0, 3, 7]], 4.0, torch.Generator().manual_seed(3))
    assert full.states.shape[1] == 8 and sub.states.shape[1] == 3
    assert torch.equal(sub.states[:, 1], full.states[:, 3]) and torch.equal(sub.states[:, -1], full.states[:, -1])
    for b in range(2):
        k = int(batch.clean[b].sum())
        assert torch.equal(full.states[b, :, :, :k], batch.x0[b, :, :k].expand(8, -1, -1, -1, -1))
    guided_once = teacher_states(teacher, batch, grid, grid[[0, 7]], 1.0, torch.Generator().manual_seed(3))
    assert not torch.allclose(guided_once.states[:, -1], full.states[:, -1])  # the guidance scale matters


def test_one_euler_step_on_the_jump_target_lands_on_the_teachers_next_state(teacher, batch):
    grid = flow_timesteps(5, 7.0)
    student = grid[[0, 2, 5]]
    states = teacher_states(teacher, batch, grid, student, 4.0, torch.Generator().manual_seed(1))
    for step in (0, 1):
        which = torch.full((2,), step)
        x_in, t, v = jump_targets(states, student, which)
        assert torch.allclose(t, torch.full((2,), float(student[step])))
        landed = x_in + ((student[step + 1] - student[step]) / 1000.0).float() * v
        assert torch.allclose(landed, states.states[:, step + 1], atol=1e-5)


def _tiny_teacher(folder):
    torch.manual_seed(0)
    nets = (("dit", build_dit("tiny", seed=0), "tiny"), ("vae", build_vae("demo"), "demo"),
            ("wav2vec2", build_wav2vec2("tiny"), "tiny"))
    for part, net, name in nets:
        tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(tensors, str(folder / DEMO_WEIGHT_FILES[part]), metadata={CONFIG_METADATA_KEY: name})


def test_a_short_run_writes_the_student_its_grid_and_its_record(tmp_path):
    _tiny_teacher(tmp_path)
    record = distill(SMOKE_STUDENT, tmp_path, tmp_path / "out", minutes=0.15, log=open("/dev/null", "w"))
    assert record.steps >= 1 and record.trajectories["solo"] >= 1
    with safe_open(str(tmp_path / "out" / STUDENT_FILE), framework="pt") as f:
        meta = f.metadata()
        assert json.loads(meta[GRID_METADATA_KEY]) == [float(t) for t in SMOKE_STUDENT.student_grid()]
        assert meta[CONFIG_METADATA_KEY] == "tiny"
    saved = json.loads((tmp_path / "out" / RECORD_FILE).read_text())
    assert saved["config"]["teacher_steps"] == SMOKE_STUDENT.teacher_steps and saved["steps"] == record.steps
    with pytest.warns(DemoWeightsWarning), pytest.raises(FileNotFoundError, match="trained teacher"):
        distill(SMOKE_STUDENT, tmp_path / "empty", tmp_path / "out2", minutes=0.05)
