"""The pack as ComfyUI sees it: imported by file path, every node honouring the host's contract."""

from __future__ import annotations

import re
import sys

import pytest
from helpers.node_contract import contract_problems
from helpers.pack_import import REPO_ROOT, import_pack_like_comfyui


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return import_pack_like_comfyui(tmp_path_factory.mktemp("custom_nodes"))


def test_pack_imports_by_path_without_comfyui(pack):
    assert pack.NODE_CLASS_MAPPINGS, "the pack registers no nodes"
    assert set(pack.NODE_CLASS_MAPPINGS) == set(pack.NODE_DISPLAY_NAME_MAPPINGS)
    assert not any(name == "comfy" or name.startswith("comfy.") for name in sys.modules)


def test_every_node_honours_the_contract(pack):
    problems = {
        node_id: contract_problems(node_id, cls, pack.NODE_DISPLAY_NAME_MAPPINGS)
        for node_id, cls in pack.NODE_CLASS_MAPPINGS.items()
    }
    assert {k: v for k, v in problems.items() if v} == {}


def test_contract_catches_a_function_that_disagrees_with_its_inputs():
    class Broken:
        CATEGORY = "TalkGen/test"
        DESCRIPTION = "broken on purpose"
        RETURN_TYPES = ("IMAGE",)
        RETURN_NAMES = ("image",)
        OUTPUT_TOOLTIPS = ("frames",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {
                "required": {"steps": ("INT", {"default": 50, "min": 1, "max": 40, "tooltip": "steps"})},
                "optional": {"seed": ("INT", {"default": 0, "tooltip": "seed"})},
            }

        def run(self, steps, strength, seed):
            return (None,)

    problems = contract_problems("TalkGenBroken", Broken, {"TalkGenBroken": "Broken"})
    assert any("default 50 outside" in p for p in problems)
    assert any("parameter 'strength'" in p for p in problems)
    assert any("optional input 'seed' needs a default" in p for p in problems)


HOST_IMPORT = re.compile(r"^\s*(import|from)\s+(comfy\w*|folder_paths|server|nodes|latent_preview|node_helpers)\b", re.M)


def test_only_host_module_imports_comfyui():
    offenders = []
    for path in list((REPO_ROOT / "talkgen_core").rglob("*.py")) + list((REPO_ROOT / "nodes").rglob("*.py")):
        if path == REPO_ROOT / "nodes" / "host.py":
            continue
        if HOST_IMPORT.search(path.read_text()):
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []
