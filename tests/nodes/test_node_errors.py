"""Bad input at the node level: a clear message naming the input, the file and the fix; finished work kept."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from helpers.demo_workflow import demo_graph
from helpers.native_doubles import NATIVE_DOUBLES
from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui
from helpers.workflow_executor import run_api_workflow


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return import_pack_like_comfyui(tmp_path_factory.mktemp("custom_nodes"))


def node(pack, name):
    return pack.NODE_CLASS_MAPPINGS[f"TalkGen{name}"]()


def test_missing_model_file_names_the_folder(pack):
    with pytest.raises(FileNotFoundError, match=r"models/diffusion_models"):
        node(pack, "ModelLoader").load("wan2.1_i2v_480p_14B_fp16.safetensors", "none", "stored", "auto", "sdpa")


def test_a_vae_in_the_model_slot_is_named(pack, tmp_path):
    wrong = tmp_path / "wan_2.1_vae.safetensors"
    save_file({"encoder.conv1.weight": torch.zeros(8, 3, 3, 3, 3), "decoder.conv1.weight": torch.zeros(8, 16, 3, 3, 3)},
              str(wrong))
    with pytest.raises(ValueError, match=r"wan_2\.1_vae\.safetensors.*(VAE|vae)"):
        node(pack, "ModelLoader").load(str(wrong), "none", "stored", "auto", "sdpa")


def test_a_dit_in_the_audio_encoder_slot_is_refused(pack, tmp_path):
    wrong = tmp_path / "dit.safetensors"
    save_file({"patch_embedding.weight": torch.zeros(4, 36, 1, 2, 2)}, str(wrong))
    with pytest.raises(ValueError, match="not a wav2vec2 checkpoint"):
        node(pack, "AudioEncoderLoader").load(str(wrong))


def test_speaker_masks_must_match_the_speaker_count(pack):
    with pytest.raises(ValueError, match=r"one mask per speaker \(3\)"):
        node(pack, "SpeakerMasks").build(3, "", masks=torch.ones(2, 32, 32))


def test_dubbing_source_needs_exactly_one_input(pack):
    with pytest.raises(ValueError, match="exactly one of video or images"):
        node(pack, "DubbingSource").build("chunk_start")


def test_cancel_keeps_the_finished_chunks_and_a_rerun_resumes(pack, tmp_path, monkeypatch):
    """Cancel during the second chunk: the first chunk's latents stay in the job folder, and queueing the same
    graph again finishes from there instead of starting over."""
    graph = demo_graph(json.loads((REPO_ROOT / "workflows" / "api" / "talkgen_demo.json").read_text()), "none")
    graph["8"]["inputs"]["job_dir"] = "job"  # a folder in the output folder (./output outside ComfyUI)
    monkeypatch.chdir(tmp_path)
    classes = {**pack.NODE_CLASS_MAPPINGS, **NATIVE_DOUBLES}
    sampler_host = pack.nodes.sampler.host
    def cancel_after_a_chunk():  # asked before every chunk, step, DiT block, VAE frame: yes once a chunk is saved
        return any((tmp_path / "output" / "job").glob("*/chunk_*"))

    monkeypatch.setattr(sampler_host, "cancel_requested", cancel_after_a_chunk)
    with pytest.raises(Exception, match="cancelled after 1 of"):
        run_api_workflow(graph, classes)
    saved = sorted(p.name for p in (tmp_path / "output" / "job").glob("*/chunk_*"))
    assert len(saved) == 1
    monkeypatch.setattr(sampler_host, "cancel_requested", lambda: False)
    outputs = run_api_workflow(graph, classes)
    assert outputs["8"][1] == outputs["6"][2]
