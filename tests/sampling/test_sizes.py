"""The demo size keeps the short side at 64, so people keep the size the demo model was trained at."""

import pytest

from talkgen_core.sampling.sizes import resolve_size


@pytest.mark.parametrize("source, want", [((256, 256), (64, 64)), ((256, 512), (64, 128)), ((512, 256), (128, 64)),
                                          ((480, 854), (64, 112)), ((10, 10), (64, 64))])
def test_demo_size_sets_the_short_side(source, want):
    assert resolve_size("demo", source) == want


def test_explicit_and_bucket_sizes_are_unchanged():
    assert resolve_size("832x480", (100, 100)) == (480, 832)
    assert resolve_size("480p", (480, 832)) == (448, 896)  # the official bucket nearest in aspect
    with pytest.raises(ValueError, match="multiples of 16"):
        resolve_size("100x64", (64, 64))
