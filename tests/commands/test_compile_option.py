"""generate's --compile and --attention: the DiT they set up, the error for a missing kernel package, and the
compiled demo's frames against eager ones."""

from __future__ import annotations

import argparse
import warnings

import pytest

from talkgen_core.commands.generate import _dit_speed, add_arguments
from talkgen_core.models.attention import available_backends
from talkgen_core.models.compile import is_compiled
from talkgen_core.pipeline import DemoWeightsWarning, generate
from helpers.demo_fixtures import models  # noqa: F401 (pytest fixtures)
from helpers.tiny_inputs import write_block_face, write_gated_tone


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--image", "i.png", "--audio", "a.wav", "--out", "o.mp4", *extra])



def test_defaults_leave_the_models_alone_and_compile_loads_and_compiles_the_demo():
    assert _args().attention == "sdpa" and not _args().compile
    assert _dit_speed(_args(), None) is None  # generate() loads the demo itself, eager, as before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DemoWeightsWarning)
        models = _dit_speed(_args("--compile"), None)
    assert models.is_demo and is_compiled(models.dit) and models.dit.attention_backend == "sdpa"


@pytest.mark.parametrize("backend, package", [("flash", "flash-attn"), ("sage", "sageattention")])
def test_a_kernel_that_is_not_installed_names_its_package(models, backend, package):
    if backend in available_backends():
        pytest.skip(f"{backend} is installed here")
    with pytest.raises(ValueError, match=f"install '{package}'"):
        _dit_speed(_args("--attention", backend), models)


@pytest.mark.slow
def test_compiled_demo_frames_are_within_one_grey_level_of_eager(models, tmp_path):
    write_gated_tone(tmp_path / "a.wav")
    write_block_face(tmp_path / "face.png")
    run = dict(image=tmp_path / "face.png", audio=tmp_path / "a.wav", models=models, chunk_frames=17,
               context_frames=5, steps=4, size="16x16", fps=25)
    eager = generate(**run)
    models.dit.set_compile()
    try:
        compiled = generate(**run)
    finally:
        models.dit.set_compile(False)
    grey = (compiled.images.float() - eager.images.float()).abs() * (255 if eager.images.is_floating_point() else 1)
    assert float(grey.max()) <= 1.0
