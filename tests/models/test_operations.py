"""``operations=``: the DiT built from a host's layer classes (as ComfyUI passes ``comfy.ops.manual_cast``)."""

from __future__ import annotations

import pytest
import torch
from helpers.dit_inputs import dit_inputs
from safetensors.torch import save_file
from torch import nn

from talkgen_core.models import build_dit
from talkgen_core.models.checkpoint import load_dit
from talkgen_core.models.layers import CastConv3d, CastLinear, CoreOperations, FP32LayerNorm, RMSNorm, convert_weights


class TorchOperations:
    """Plain torch layers under the four names a host's operations have."""

    Linear = nn.Linear
    Conv3d = nn.Conv3d
    LayerNorm = nn.LayerNorm
    RMSNorm = nn.RMSNorm


CORE_LAYERS = (CastLinear, CastConv3d, FP32LayerNorm, RMSNorm)


def _leaf_types(model: nn.Module) -> set[type]:
    return {type(m) for m in model.modules() if any(True for _ in m.parameters(recurse=False))}


def test_every_layer_comes_from_the_operations_and_computes_what_the_core_layers_do():
    core = build_dit("tiny", seed=0)
    hosted = build_dit("tiny", device="meta", operations=TorchOperations)
    hosted.load_state_dict(core.state_dict(), strict=True, assign=True)
    assert _leaf_types(core) - {type(core.blocks[0]), type(core.head)} == set(CORE_LAYERS)
    assert _leaf_types(hosted) - {type(hosted.blocks[0]), type(hosted.head)} == {nn.Linear, nn.Conv3d, nn.LayerNorm,
                                                                                  nn.RMSNorm}
    inputs = dit_inputs(core.config, batch=2, seed=1)
    with torch.no_grad():
        want, got = core(**inputs), hosted(**inputs)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_a_seeded_build_initialises_host_layers_as_the_core_ones():
    core = build_dit("tiny", seed=4).state_dict()
    hosted = build_dit("tiny", seed=4, operations=TorchOperations).state_dict()
    assert list(core) == list(hosted)
    assert all(torch.equal(core[k], hosted[k]) for k in core)


def test_the_loader_builds_with_the_operations_but_fp8_keeps_the_core_layers(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_file(build_dit("tiny", seed=0).state_dict(), str(path))
    hosted = load_dit(path, operations=TorchOperations)
    query = hosted.blocks[0].self_attn.q
    assert isinstance(query, nn.Linear) and not isinstance(query, CastLinear)
    assert isinstance(load_dit(path).blocks[0].self_attn.q, CoreOperations.Linear)
    with pytest.raises(ValueError, match="fp8 weights need the core's layers"):
        convert_weights(hosted, torch.float8_e4m3fn)
