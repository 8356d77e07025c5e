"""Ulysses sequence parallel on CPU with gloo: 2 spawned ranks give the single-process forward, on every rank."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from helpers.sequence_parallel_worker import forwards, run_rank
from talkgen_core.models import build_dit
from talkgen_core.models.sequence_parallel import check_sequence_parallel, frame_split


def test_two_ranks_equal_one_process(tmp_path):
    mp.spawn(run_rank, args=(2, str(tmp_path)), nprocs=2, join=True)
    single = forwards(build_dit("tiny", seed=7).eval(), split=False)
    for rank in (0, 1):
        split = torch.load(tmp_path / f"rank{rank}.pt")
        assert split["tokens"].tolist() == [2 * 2 * 2, 1 * 2 * 2]  # frames 2 + 1 of 2 x 2 tokens (patch 1, 2, 2)
        for name in ("one", "two"):  # 3 latent frames split 2 + 1 over the ranks
            torch.testing.assert_close(split[name], single[name], rtol=1e-5, atol=1e-5)
            assert split[name].abs().mean() > 0.1


def test_frames_split_evenly_and_a_missing_group_is_explained():
    assert frame_split(21, 2) == [11, 10]
    assert frame_split(4, 4) == [1, 1, 1, 1]
    assert check_sequence_parallel(1) is False
    with pytest.raises(ValueError, match="torchrun --nproc_per_node 2"):
        check_sequence_parallel(2)
    with pytest.raises(ValueError, match="whole number of ranks"):
        check_sequence_parallel(0)
