"""Fixtures shared by the end-to-end tests on the embedded demo model; import them into a test module
(``from helpers.demo_fixtures import models, inputs``) to get one of each per module."""

from __future__ import annotations

import warnings

import pytest

from helpers.tiny_inputs import write_block_face, write_gated_tone
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
