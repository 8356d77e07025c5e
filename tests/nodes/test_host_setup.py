"""What the pack sets up in ComfyUI at import: its example inputs in the input folder, its model folders."""

from __future__ import annotations

import sys
import types

from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui


def test_example_inputs_are_installed_once_and_never_overwrite(tmp_path):
    pack = import_pack_like_comfyui(tmp_path)
    install = pack.nodes.example_inputs.install_example_inputs
    inputs = tmp_path / "input"
    (inputs).mkdir()
    (inputs / "talkgen_face.png").write_bytes(b"the user's own file")
    written = install(inputs)
    names = sorted(p.name for p in written)
    assert "talkgen_speech.wav" in names and "talkgen_face.png" not in names
    assert (inputs / "talkgen_face.png").read_bytes() == b"the user's own file"
    assert (inputs / "talkgen_speech.wav").read_bytes() == (REPO_ROOT / "example_inputs" / "speech.wav").read_bytes()
    assert install(inputs) == []  # a second start writes nothing
    assert sorted(p.name for p in inputs.iterdir() if p.name.startswith(".")) == []  # no temp left


def test_example_inputs_outside_comfyui_write_nothing(tmp_path):
    pack = import_pack_like_comfyui(tmp_path)
    assert pack.nodes.example_inputs.install_example_inputs() == []


def test_missing_model_folders_are_registered(tmp_path, monkeypatch):
    pack = import_pack_like_comfyui(tmp_path)
    folder_paths = types.SimpleNamespace(
        models_dir=str(tmp_path / "models"), supported_pt_extensions={".safetensors"},
        folder_names_and_paths={"vae": ([str(tmp_path / "models" / "vae")], {".safetensors"})})
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    added = pack.nodes.host.register_model_folders()
    assert added == ["diffusion_models", "model_patches", "audio_encoders", "loras"]
    assert folder_paths.folder_names_and_paths["model_patches"][0] == [str(tmp_path / "models" / "model_patches")]
    assert pack.nodes.host.register_model_folders() == []
