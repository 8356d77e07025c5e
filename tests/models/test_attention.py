"""The attention entry point: SDPA numerics, masks, and clear errors for unavailable backends."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.models import build_dit
from talkgen_core.models.attention import ATTENTION_BACKENDS, attention, available_backends, check_backend


def _reference(q, k, v, mask=None):
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", logits.softmax(-1), v)


def test_sdpa_matches_softmax_attention_in_bthd_layout():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, 3, 8, generator=g) for n in (5, 7, 7))
    torch.testing.assert_close(attention(q, k, v), _reference(q, k, v), atol=1e-5, rtol=1e-5)
    mask = torch.rand(5, 7, generator=g) > 0.4
    mask[:, 0] = True
    torch.testing.assert_close(attention(q, k, v, attn_mask=mask), _reference(q, k, v, mask), atol=1e-5, rtol=1e-5)


def test_backend_names_are_checked():
    assert "sdpa" in available_backends()
    with pytest.raises(ValueError, match="unknown attention backend 'xformers'; choose one of sdpa, flash, sage"):
        check_backend("xformers")
    for name in set(ATTENTION_BACKENDS) - set(available_backends()):
        with pytest.raises(ValueError, match="not importable"):
            build_dit("tiny", device="meta").set_attention_backend(name)
