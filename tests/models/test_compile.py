"""torch.compile per block: one graph for all blocks, hooks (cancel checks) outside it, eager numbers kept."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from helpers.dit_inputs import dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.compile import is_compiled
from talkgen_core.sampling.interrupt import before_each_block


class Stop(Exception):
    pass


def _two_speaker_inputs(model):
    inputs = dit_inputs(model.config, batch=2, frames=2, speakers=2)
    masks = torch.zeros(2, 8, 8)
    masks[0, :, :4], masks[1, :, 4:] = 1, 1
    return inputs, masks


def test_compiled_blocks_share_one_graph_and_hooks_run_outside_it():
    torch._dynamo.reset()
    counters.clear()
    model = build_dit("tiny").eval()
    inputs, masks = _two_speaker_inputs(model)  # label RoPE: the affinity map is traced too
    with torch.no_grad():
        eager = model(**inputs, speaker_masks=masks)
        model.set_compile(backend="aot_eager")
        assert is_compiled(model)
        seen: list[int] = []
        with before_each_block(model, lambda index, count: seen.append(index)):
            compiled = model(**inputs, speaker_masks=masks)
        assert seen == [0, 1]
        assert counters["stats"]["unique_graphs"] == 1  # the second block reuses the first block's graph
        assert dict(counters["graph_break"]) == {}

        def cancel(index: int, count: int) -> None:
            if index == 1:
                raise Stop

        with before_each_block(model, cancel), pytest.raises(Stop):  # a raising check stops a compiled pass
            model(**inputs, speaker_masks=masks)
        assert counters["stats"]["unique_graphs"] == 1 and dict(counters["graph_break"]) == {}
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    model.set_compile(False)
    assert not is_compiled(model)
    assert "forward" not in vars(model.blocks[0])


def test_compile_needs_blocks():
    from talkgen_core.models.compile import compile_blocks

    with pytest.raises(ValueError, match="transformer blocks"):
        compile_blocks(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_inductor_compiled_forward_matches_eager_within_float_rounding():
    torch._dynamo.reset()
    model = build_dit("tiny").eval()
    inputs, masks = _two_speaker_inputs(model)
    with torch.no_grad():
        eager = model(**inputs, speaker_masks=masks)
        compiled = model.set_compile()(**inputs, speaker_masks=masks)
    # inductor fuses norms, modulation and casts and may reorder float32 sums
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4 * eager.abs().max().item())


def test_rope_in_real_pairs_under_compile_equals_the_complex_product(monkeypatch):
    from talkgen_core.models.rope import apply_rope, rope_3d_table

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 30, 3, 16, generator=g).bfloat16()
    table = rope_3d_table((2, 3, 5), 16, 10000.0, torch.device("cpu"))
    complex_product = apply_rope(x, table)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # the branch inductor traces
    real_pairs = apply_rope(x, table)
    assert real_pairs.dtype == torch.bfloat16
    torch.testing.assert_close(real_pairs.float(), complex_product.float(), rtol=0, atol=1e-2)
    assert (real_pairs != complex_product).float().mean() < 0.01  # float32 rounding flips a rare bf16 value
