"""The queue's per-job settings carry the long-video strategy: to generate() in process, and into the shipped
API workflows' Streaming Sampler for a ComfyUI server; a bad strategy or parameter is found in the dry run."""

from __future__ import annotations

import csv
from pathlib import Path

from talkgen_core.queue.inprocess_runner import preflight_problems
from talkgen_core.queue.manifest import read_manifest
from talkgen_core.queue.workflow import fill_workflow, load_api_workflow

REPO = Path(__file__).resolve().parents[2]


def manifest(tmp_path: Path, rows: list[dict]) -> Path:
    (tmp_path / "face.png").write_bytes((REPO / "example_inputs" / "face.png").read_bytes())
    (tmp_path / "voice.wav").write_bytes((REPO / "example_inputs" / "speech.wav").read_bytes())
    path = tmp_path / "jobs.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({k for row in rows for k in row}))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_strategy_columns_reach_generate_and_the_workflow(tmp_path):
    jobs = read_manifest(manifest(tmp_path, [
        {"image": "face.png", "audio": "voice.wav", "output": "a", "strategy": "sliding-window", "overlap_frames": 13},
        {"image": "face.png", "audio": "voice.wav", "output": "b", "strategy": "memory-bank", "memory_sigma": 0.2},
    ]))
    from talkgen_core.pipeline import generate

    assert [preflight_problems(generate, job) for job in jobs] == [[], []]
    assert jobs[0].settings == {"strategy": "sliding-window", "overlap_frames": 13}
    assert jobs[0].key != read_manifest(manifest(tmp_path, [
        {"image": "face.png", "audio": "voice.wav", "output": "a", "strategy": "memory-bank", "overlap_frames": 13},
    ]))[0].key
    workflow = load_api_workflow(REPO / "workflows" / "api" / "talkgen_demo.json")
    filled = fill_workflow(workflow, source_kind="image", source_name="face.png", audio_names=["voice.wav"],
                           output_prefix="a", settings=jobs[1].settings)
    sampler = next(node for node in filled.values() if node["class_type"] == "TalkGenSampler")
    assert sampler["inputs"]["strategy"] == "memory-bank" and sampler["inputs"]["memory_sigma"] == 0.2


def test_the_dry_run_names_a_bad_strategy_or_parameter(tmp_path):
    jobs = read_manifest(manifest(tmp_path, [
        {"image": "face.png", "audio": "voice.wav", "output": "a", "strategy": "windowed"},
        {"image": "face.png", "audio": "voice.wav", "output": "b", "strategy": "sliding-window", "overlap_frames": 8},
        {"image": "face.png", "audio": "voice.wav", "output": "c", "strategy": "sliding-window", "solver": "heun"},
    ]))
    from talkgen_core.pipeline import generate

    problems = [" ".join(preflight_problems(generate, job)) for job in jobs]
    assert "unknown strategy 'windowed'" in problems[0] and "sliding-window" in problems[0]
    assert "overlap_frames must be 4n+1" in problems[1]
    assert "solvers euler, euler_ancestral" in problems[2]
