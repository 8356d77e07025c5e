import json

import pytest
import torch

from talkgen_core.audio.wav2vec2 import build_wav2vec2
from talkgen_core.models.dit import build_dit
from talkgen_core.models.vae import build_vae
from talkgen_core.train.loop import _lr_factor, train
from talkgen_core.train.state import CHECKPOINT_META


def test_smoke_run_trains_every_stage_checkpoints_and_exports(tmp_path, smoke_config):
    summary = train(smoke_config, tmp_path, minutes=0.08, log_stream=None)
    assert set(summary.steps) == {"vae", "stage1", "stage2"}
    assert summary.seconds["cache"] > 0.0 and summary.seconds["data"] > 0.0
    assert all(n >= 1 for n in summary.steps.values())
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    stages = {r["stage"] for r in records}
    assert stages == {"vae", "cache", "stage1", "stage2", "evaluate"}
    assert any("val_loss" in r for r in records)
    assert summary.evaluation is not None and -15 <= summary.evaluation["best_lag"] <= 15
    assert json.loads((tmp_path / CHECKPOINT_META).read_text())["progress"]["stage"] == "done"

    from talkgen_core.pipeline import DEMO_WEIGHT_FILES
    from safetensors.torch import load_file

    dit = build_dit(smoke_config.dit, seed=1)
    dit.load_state_dict(load_file(str(tmp_path / "weights" / DEMO_WEIGHT_FILES["dit"])))
    vae = build_vae(smoke_config.vae)
    vae.load_state_dict(load_file(str(tmp_path / "weights" / DEMO_WEIGHT_FILES["vae"])))
    w2v = build_wav2vec2(smoke_config.wav2vec2)
    w2v.load_state_dict(load_file(str(tmp_path / "weights" / DEMO_WEIGHT_FILES["wav2vec2"])))

    # A finished run resumes to nothing new; a fresh run into the same folder is refused.
    again = train(smoke_config, tmp_path, minutes=0.12, resume=True, log_stream=None)
    assert again.steps == summary.steps
    with pytest.raises(FileExistsError):
        train(smoke_config, tmp_path, minutes=0.12, log_stream=None)


def test_learning_rate_schedule():
    assert _lr_factor(0, 10, 0.0, 100.0) == pytest.approx(0.1)
    assert _lr_factor(50, 10, 10.0, 100.0) == pytest.approx(1.0)
    assert _lr_factor(50, 10, 100.0, 100.0) == pytest.approx(0.1)
    assert _lr_factor(50, 10, 85.0, 100.0) == pytest.approx(0.55)
    assert _lr_factor(50, 10, 1e9, float("inf")) == pytest.approx(1.0)


def test_resume_continues_after_the_finished_stage(tmp_path, smoke_config):
    from dataclasses import replace

    from talkgen_core.train.loop import Trainer

    smoke_config = replace(smoke_config, eval_video_seconds=0.0)  # measured in the test above

    first = Trainer(smoke_config, tmp_path, minutes=0.08, log_stream=None)
    first._run_vae()
    first.progress.stage = "stage1"
    first.save()  # as if the run had been stopped right after the VAE stage
    vae_steps = first.progress.step["vae"]
    folded = {k: v.clone() for k, v in first.vae.state_dict().items()}

    summary = train(smoke_config, tmp_path, minutes=0.08, resume=True, log_stream=None)
    assert summary.steps["vae"] == vae_steps  # the VAE stage is not run again
    assert summary.steps["stage1"] >= 1 and summary.steps["stage2"] >= 1
    from safetensors.torch import load_file

    from talkgen_core.pipeline import DEMO_WEIGHT_FILES

    exported = load_file(str(tmp_path / "weights" / DEMO_WEIGHT_FILES["vae"]))
    assert all(torch.equal(exported[k], folded[k]) for k in folded)


def test_vae_from_skips_the_vae_stage_and_exports_that_vae_unchanged(tmp_path, smoke_config):
    from dataclasses import replace

    from safetensors.torch import load_file, save_file

    from talkgen_core.models.demo import CONFIG_METADATA_KEY
    from talkgen_core.pipeline import DEMO_WEIGHT_FILES

    smoke_config = replace(smoke_config, eval_video_seconds=0.0)
    torch.manual_seed(3)
    trained = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
               for k, v in build_vae(smoke_config.vae).state_dict().items()}
    vae_file = tmp_path / "vae.safetensors"
    save_file(trained, str(vae_file), metadata={CONFIG_METADATA_KEY: smoke_config.vae})

    summary = train(smoke_config, tmp_path / "run", minutes=0.05, log_stream=None, vae_from=vae_file)
    assert "vae" not in summary.steps and summary.steps["stage1"] >= 1 and summary.steps["stage2"] >= 1
    exported = load_file(str(tmp_path / "run" / "weights" / DEMO_WEIGHT_FILES["vae"]))
    assert all(torch.equal(exported[k], v) for k, v in trained.items())
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["vae_from"] == str(vae_file)

    with pytest.raises(ValueError, match="resume with the same --vae-from"):
        train(smoke_config, tmp_path / "run", minutes=0.05, resume=True, log_stream=None)
    other = tmp_path / "other.safetensors"
    save_file(trained, str(other), metadata={CONFIG_METADATA_KEY: "demo-v2"})
    with pytest.raises(ValueError, match="holds a 'demo-v2' VAE"):
        train(smoke_config, tmp_path / "run2", minutes=0.05, log_stream=None, vae_from=other)
    with pytest.raises(FileNotFoundError, match="--vae-from"):
        train(smoke_config, tmp_path / "run3", minutes=0.05, log_stream=None, vae_from=tmp_path / "missing")
