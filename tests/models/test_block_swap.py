"""Block swap: offloaded blocks compute with bit-identical weights, are fetched one ahead and go back on exit."""

from __future__ import annotations

import pytest
import torch

from helpers.dit_inputs import dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.block_swap import block_swap, offloaded_indices


@pytest.fixture(scope="module")
def model():
    return build_dit("tiny", seed=3).eval().requires_grad_(False)


def forward(model, inputs):
    return model(inputs["x"], inputs["t"], inputs["context"], inputs["cond"], inputs["clip_fea"], inputs["audio"])


def test_swapped_model_gives_exactly_the_resident_output(model):
    inputs = dit_inputs(model.config, batch=2, frames=3, size=4)
    resident = forward(model, inputs)
    with block_swap(model, 2, "cpu") as swap:
        assert swap is not None and swap.offloaded == (0, 1)
        swapped = [forward(model, inputs), forward(model, inputs)]
        # one copy per offloaded block and forward, plus the first block prefetched for the next forward
        assert swap.copies == 2 * 2 + 1
    assert all(torch.equal(resident, out) for out in swapped)
    assert torch.equal(forward(model, inputs), resident)  # the weights are back and unchanged


def test_an_offloaded_block_runs_on_a_fresh_copy_and_holds_only_its_host_tensor_afterwards(model):
    inputs = dit_inputs(model.config, frames=2, size=4)
    seen: dict[str, int] = {}
    weight = model.blocks[1].ffn[0].weight
    hook = model.blocks[1].ffn[0].register_forward_pre_hook(lambda m, a: seen.update(during=m.weight.data_ptr()))
    try:
        with block_swap(model, 1, "cpu") as swap:
            host = swap.host[1][[slot[0] for slot in swap.slots[1]].index(model.blocks[1].ffn[0])]
            forward(model, inputs)
            assert seen["during"] != host.data_ptr()  # computed on the staged copy
            assert weight.data_ptr() == host.data_ptr()  # between blocks only the host copy is held
    finally:
        hook.remove()


def test_offload_count_is_checked_and_zero_does_nothing(model):
    assert offloaded_indices(4, 0) == ()
    assert offloaded_indices(4, 3) == (1, 2, 3)
    with pytest.raises(ValueError, match="offload_blocks must be a whole number from 0 to 2"):
        with block_swap(model, 3, "cpu"):
            pass
    with block_swap(model, 0, "cpu") as swap:
        assert swap is None
