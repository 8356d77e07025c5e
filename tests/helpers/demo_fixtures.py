"""Fixtures shared by the end-to-end tests on the embedded demo model; import them into a test module
(``from helpers.demo_fixtures import models, inputs``) to get one of each per module."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from helpers.tiny_inputs import write_block_face, write_gated_tone
from talkgen_core.cli import main
from talkgen_core.pipeline import DemoWeightsWarning, load_demo_models


@pytest.fixture(scope="module")
def models():
    """The demo model (the shipped weights, or seeded random ones where they are missing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DemoWeightsWarning)
        return load_demo_models()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with ``a.wav`` (1 s at 180 Hz), ``b.wav`` (1 s at 260 Hz) and ``face.png``."""
    folder = tmp_path_factory.mktemp("inputs")
    write_gated_tone(folder / "a.wav")
    write_gated_tone(folder / "b.wav", hz=260.0)
    write_block_face(folder / "face.png")
    return folder


def generate_report(inputs: Path, tmp_path: Path, *options: str) -> dict:
    """``generate`` on the ``inputs`` fixture's face and a.wav at 16 x 16 with ``options``: its ``--report``."""
    report = tmp_path / "run.json"
    args = ["generate", "--image", str(inputs / "face.png"), "--audio", str(inputs / "a.wav"), "--out",
            str(tmp_path / "o.mp4"), "--size", "16x16", "--report", str(report), *options]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DemoWeightsWarning)
        assert main(args) == 0
    return json.loads(report.read_text())
