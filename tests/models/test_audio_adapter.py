"""Audio adapter: window regrouping, frame-local audio attention, speaker routing and per-speaker strength.

Audio effects are measured on the *first block's* audio cross-attention output (captured with a hook): its
input does not depend on audio yet, so any change there comes from the audio path alone. Later blocks mix
frames through self-attention, which is why the final output cannot be used for locality.
"""

from __future__ import annotations

import pytest
import torch

import talkgen_core.models.blocks as blocks_module
from helpers.dit_inputs import capture_audio_residual, dit_inputs
from talkgen_core.models import build_dit
from talkgen_core.models.audio_adapter import SpeakerRouting, group_audio_windows, label_positions, speaker_affinity
from talkgen_core.models.configs import variant

GRID = 4  # token grid is GRID x GRID (latent 8 x 8, patch 2)


def _residual_per_frame(model, inputs, frames: int, **kwargs) -> torch.Tensor:
    """First block's audio residual as [B, frames, tokens per frame, C]."""
    records, hook = capture_audio_residual(model)
    with torch.no_grad():
        model(**inputs, **kwargs)
    hook.remove()
    out = records[0]
    return out.view(out.shape[0], frames, -1, out.shape[-1])


def _half_masks(speakers: int = 2) -> torch.Tensor:
    """Speaker p owns a vertical stripe of the 8 x 8 latent: p = 0 left columns, p = 1 the next, ..."""
    masks = torch.zeros(speakers, 8, 8)
    width = 8 // (speakers + (1 if speakers > 2 else 0))
    for p in range(speakers):
        masks[p, :, p * width : (p + 1) * width] = 1
    return masks


def _region(masks: torch.Tensor, p: int) -> torch.Tensor:
    """Token-grid membership [GRID * GRID] of mask p (nearest downsampling of the 8 x 8 mask)."""
    return masks[p, ::2, ::2].flatten() > 0


def test_group_audio_windows_takes_the_official_slots():
    frames = 9  # 3 latent frames
    codes = torch.arange(frames)[:, None] * 10 + torch.arange(5)[None, :]  # value = 10 * frame + slot
    audio = codes.float().view(1, frames, 5, 1, 1)
    first, later = group_audio_windows(audio, vae_scale=4)
    assert first.flatten().tolist() == [0, 1, 2, 3, 4]
    assert later.shape == (1, 2, 8, 1, 1)
    assert later[0, 0].flatten().tolist() == [10, 11, 12, 22, 32, 42, 43, 44]
    assert later[0, 1].flatten().tolist() == [50, 51, 52, 62, 72, 82, 83, 84]


def test_audio_of_one_latent_frame_only_reaches_that_frame():
    model = build_dit("tiny", seed=0)
    inputs = dit_inputs(model.config, batch=2, frames=3)
    base = _residual_per_frame(model, inputs, 3)
    for latent, video_frames in ((0, slice(0, 1)), (1, slice(1, 5)), (2, slice(5, 9))):
        audio = inputs["audio"].clone()
        audio[:, :, video_frames] += torch.randn_like(audio[:, :, video_frames])
        changed = (_residual_per_frame(model, dict(inputs, audio=audio), 3) - base).abs().amax(dim=(0, 2, 3))
        assert changed[latent] > 1e-3, f"latent frame {latent} did not respond to its own audio"
        others = [k for k in range(3) if k != latent]
        assert torch.all(changed[others] == 0), f"audio of latent frame {latent} leaked: {changed.tolist()}"
    # a slot the regrouping never reads (middle video frame 2, offset -2) changes nothing at all
    audio = inputs["audio"].clone()
    audio[:, :, 2, 0] += 5.0
    assert torch.equal(_residual_per_frame(model, dict(inputs, audio=audio), 3), base)


def _aligned_routing_model():
    """One block, one head (head_dim 64), with q = k constant vectors in both the self-attention and the
    audio attention, so attention logits depend only on rotary distance: tokens attend to keys at nearby
    positions. Then label RoPE is the only thing that can prefer one speaker's audio tokens."""
    model = build_dit(variant("tiny", name="tiny-aligned", num_heads=1, num_layers=1), seed=0)
    block = model.blocks[0]
    dim = model.config.dim
    with torch.no_grad():
        for lin, norm in ((block.self_attn.q, block.self_attn.norm_q), (block.self_attn.k, block.self_attn.norm_k)):
            lin.weight.zero_()
            lin.bias.fill_(1.0)
            norm.weight.fill_(1.5)
        block.audio_cross_attn.q_linear.weight.zero_()
        block.audio_cross_attn.q_linear.bias.fill_(1.0)
        block.audio_cross_attn.kv_linear.weight[:dim].zero_()  # K half: constant; V half keeps the audio
        block.audio_cross_attn.kv_linear.bias[:dim].fill_(1.0)
    return model


def _responses(model, inputs, masks, frames, **kwargs) -> torch.Tensor:
    """[region p, perturbed speaker q]: mean |change| of region p's audio residual when audio q changes."""
    base = _residual_per_frame(model, inputs, frames, speaker_masks=masks, **kwargs)
    speakers = masks.shape[0]
    table = torch.zeros(speakers, speakers)
    g = torch.Generator().manual_seed(7)
    for q in range(speakers):
        audio = inputs["audio"].clone()
        audio[:, q] += torch.randn(audio[:, q].shape, generator=g)
        delta = (_residual_per_frame(model, dict(inputs, audio=audio), frames, speaker_masks=masks, **kwargs) - base)
        for p in range(speakers):
            table[p, q] = delta[:, :, _region(masks, p)].abs().mean()
    return table


def test_label_rope_makes_each_region_prefer_its_own_speaker():
    model = _aligned_routing_model()
    inputs = dit_inputs(model.config, frames=2, speakers=2)
    masks = _half_masks(2)
    table = _responses(model, inputs, masks, 2, speaker_routing="lrope")
    assert table[0, 0] > 3 * table[0, 1], table
    assert table[1, 1] > 3 * table[1, 0], table
    # "auto" with two speakers is label RoPE
    assert torch.equal(_responses(model, inputs, masks, 2), table)


def test_label_positions_follow_the_official_ranges():
    routing = SpeakerRouting(mode="lrope", num_speakers=2, tokens_per_speaker=4)
    affinity = torch.tensor([[[0.9, 0.1, 0.0], [0.5, 0.2, 0.1], [0.1, 0.8, 0.0], [0.2, 0.1, 0.7], [0.3, 0.3, 0.1]]])
    positions, winner = label_positions(affinity, routing)
    assert winner.tolist() == [[0, 0, 1, 2, 0]]
    # speaker-1 row min 0.1 / max 0.9 -> [0, 4]; speaker-2 row min 0.1 / max 0.8 -> [20, 24]; background 12
    torch.testing.assert_close(positions[0], torch.tensor([4.0, 2.0, 24.0, 12.0, 1.0]), atol=1e-5, rtol=0)


def test_mask_routing_sends_each_region_only_its_own_speaker():
    model = build_dit("tiny", seed=1)
    inputs = dit_inputs(model.config, frames=2, speakers=2)
    masks = torch.zeros(2, 8, 8)
    masks[0, :, :4] = 1  # speaker 1: left half; speaker 2: columns 4-5; background: columns 6-7
    masks[1, :, 4:6] = 1
    table = _responses(model, inputs, masks, 2, speaker_routing="mask")
    assert table[0, 0] > 1e-3 and table[0, 1] == 0, table
    assert table[1, 1] > 1e-3 and table[1, 0] == 0, table
    base = _residual_per_frame(model, inputs, 2, speaker_masks=masks, speaker_routing="mask")
    background = (masks[0, ::2, ::2] + masks[1, ::2, ::2]).flatten() == 0
    for q in range(2):  # background tokens attend to every speaker
        audio = inputs["audio"].clone()
        audio[:, q] += 1.0
        moved = _residual_per_frame(model, dict(inputs, audio=audio), 2, speaker_masks=masks, speaker_routing="mask")
        assert (moved - base)[:, :, background].abs().mean() > 1e-4


def test_three_speakers_are_mask_routed_by_default():
    model = build_dit("tiny", seed=2)
    inputs = dit_inputs(model.config, frames=2, speakers=3)
    masks = _half_masks(3)  # stripes of 2 columns, last 2 columns background
    table = _responses(model, inputs, masks, 2)
    off_diagonal = table[~torch.eye(3, dtype=torch.bool)]
    assert torch.all(table.diag() > 1e-3) and torch.all(off_diagonal == 0), table
    with pytest.raises(ValueError, match="exactly 2 speakers"):
        _residual_per_frame(model, inputs, 2, speaker_masks=masks, speaker_routing="lrope")


def test_per_speaker_strength_scales_only_that_speakers_region():
    model = build_dit("tiny", seed=1)
    inputs = dit_inputs(model.config, frames=2, speakers=2)
    masks = torch.zeros(2, 8, 8)
    masks[0, :, :4] = 1
    masks[1, :, 4:6] = 1
    run = lambda scale: _residual_per_frame(  # noqa: E731
        model, inputs, 2, speaker_masks=masks, speaker_routing="mask", audio_scale=scale
    )
    full, muted = run(1.0), run([1.0, 0.0])
    one, two = _region(masks, 0), _region(masks, 1)
    background = ~(one | two)
    assert torch.equal(muted[:, :, one], full[:, :, one])
    assert torch.all(muted[:, :, two] == 0)
    torch.testing.assert_close(muted[:, :, background], 0.5 * full[:, :, background])
    torch.testing.assert_close(run(0.25), 0.25 * full)


def test_label_rope_strength_follows_the_routed_speaker():
    model = _aligned_routing_model()
    inputs = dit_inputs(model.config, frames=2, speakers=2)
    masks = _half_masks(2)
    full = _residual_per_frame(model, inputs, 2, speaker_masks=masks)
    half = _residual_per_frame(model, inputs, 2, speaker_masks=masks, audio_scale=torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(half[:, :, _region(masks, 0)], full[:, :, _region(masks, 0)])
    torch.testing.assert_close(half[:, :, _region(masks, 1)], 0.5 * full[:, :, _region(masks, 1)])


def test_affinity_map_is_computed_only_for_label_rope(monkeypatch):
    calls = []
    original = blocks_module.speaker_affinity
    monkeypatch.setattr(blocks_module, "speaker_affinity", lambda *a: calls.append(1) or original(*a))
    model = build_dit("tiny", seed=0)
    single = dit_inputs(model.config, frames=2, speakers=1)
    with torch.no_grad():
        model(**single)
        assert calls == []
        model(**dit_inputs(model.config, frames=2, speakers=2), speaker_masks=_half_masks(2))
    assert len(calls) == model.config.num_layers


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_affinity_equals_the_one_block_float32_formula(dtype):
    # 2 x 4 heads x 64 frame tokens: 2048 queries take 4 cache-sized chunks on the CPU
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 2048, 4, 32, generator=g).to(dtype)
    k = torch.randn(2, 2048, 4, 32, generator=g).to(dtype)
    regions = torch.zeros(3, 64)
    regions[0, :20], regions[1, 20:50], regions[2, 50:] = 1, 1, 1
    weights = (regions / regions.sum(1, keepdim=True)).t()
    logits = q.float().transpose(1, 2) @ k[:, :64].float().transpose(1, 2).transpose(-1, -2) / 32**0.5
    want = (torch.softmax(logits, dim=-1) @ weights).mean(dim=1)  # [B, L, 3]
    got = speaker_affinity(q, k, 64, weights)
    assert got.dtype == torch.float32 and got.shape == (2, 2048, 3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)  # float32 in either compute dtype


def test_speaker_input_errors_name_the_fix():
    model = build_dit("tiny", seed=0)
    two = dit_inputs(model.config, frames=2, speakers=2)
    with torch.no_grad():
        with pytest.raises(ValueError, match="speaker_masks is None"):
            model(**two)
        with pytest.raises(ValueError, match="3 masks for 2 speakers"):
            model(**two, speaker_masks=torch.ones(3, 8, 8))
        with pytest.raises(ValueError, match="audio_scale has 3 values"):
            model(**two, speaker_masks=_half_masks(2), audio_scale=[1.0, 1.0, 1.0])
        with pytest.raises(ValueError, match="speaker_routing"):
            model(**two, speaker_masks=_half_masks(2), speaker_routing="nearest")


def test_two_speaker_rows_do_not_depend_on_the_batch_even_for_whole_frame_masks():
    """Batched guidance passes must equal separate calls; a mask covering the whole frame gives a constant
    affinity row whose rounding noise must not decide the label positions."""
    model = build_dit("tiny")
    a = dit_inputs(model.config, speakers=2, seed=1)
    b = dit_inputs(model.config, speakers=2, seed=2)
    b["audio"] = torch.zeros_like(b["audio"])
    masks = torch.ones(2, 8, 8)
    both = model(**{k: torch.cat([a[k], b[k]]) for k in a}, speaker_masks=masks, speaker_routing="lrope")
    alone = [model(**x, speaker_masks=masks, speaker_routing="lrope")[0] for x in (a, b)]
    assert torch.allclose(both[0], alone[0], atol=1e-4) and torch.allclose(both[1], alone[1], atol=1e-4)
