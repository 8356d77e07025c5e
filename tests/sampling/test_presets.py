"""Named sampling presets and the explicit time grid they may carry (SoulX-FlashTalk's 1000/750/500/250)."""

from __future__ import annotations

import pytest
import torch

from talkgen_core.sampling.presets import SAMPLING_PRESETS, get_sampling_preset
from talkgen_core.sampling.schedules import explicit_timesteps, flow_timesteps
from talkgen_core.sampling.streaming import StreamSettings


def test_each_preset_holds_its_published_numbers():
    official, lightx2v, flashtalk = (SAMPLING_PRESETS[n] for n in ("official", "lightx2v-4step", "flashtalk"))
    assert (official.steps, official.shift, official.text_cfg, official.audio_cfg) == (40, None, 5.0, 4.0)
    assert (official.chunk_frames, official.context_frames, official.solver) == (81, 9, "euler")
    assert (lightx2v.steps, lightx2v.shift, lightx2v.text_cfg, lightx2v.audio_cfg) == (4, 7.0, 1.0, 1.0)
    assert (lightx2v.chunk_frames, lightx2v.context_frames, lightx2v.timesteps) == (81, 9, None)
    assert (flashtalk.steps, flashtalk.shift, flashtalk.text_cfg, flashtalk.audio_cfg) == (4, 5.0, 1.0, 1.0)
    assert (flashtalk.chunk_frames, flashtalk.context_frames) == (33, 5)
    assert flashtalk.timesteps == (1000.0, 750.0, 500.0, 250.0) and flashtalk.solver == "euler_ancestral"
    auto = SAMPLING_PRESETS["auto"]
    assert (auto.steps, auto.shift, auto.text_cfg, auto.audio_cfg) == (None, None, None, None)


def test_flashtalk_grid_is_its_list_warped_by_shift_5():
    grid = explicit_timesteps(SAMPLING_PRESETS["flashtalk"].timesteps, 5.0)
    # 5u / (1 + 4u) at u = 1, 0.75, 0.5, 0.25, then the final 0
    torch.testing.assert_close(grid, torch.tensor([1000.0, 937.5, 2500.0 / 3.0, 625.0, 0.0], dtype=torch.float64))
    linspace = flow_timesteps(4, 5.0)  # what steps + shift alone would give: a different grid
    assert float((grid - linspace).abs().max()) > 100.0


def test_lightx2v_grid_is_the_official_linspace_at_shift_7():
    settings = StreamSettings(steps=4, shift=7.0)
    torch.testing.assert_close(settings.time_grid(), flow_timesteps(4, 7.0))


def test_explicit_settings_override_and_a_new_step_count_drops_the_grid():
    flashtalk = get_sampling_preset("flashtalk")
    assert flashtalk.override(shift=3.0, audio_cfg=2.0).timesteps == flashtalk.timesteps
    changed = flashtalk.override(steps=8, chunk_frames=None)
    assert changed.steps == 8 and changed.timesteps is None and changed.chunk_frames == 33
    assert get_sampling_preset(None).name == "auto"
    with pytest.raises(ValueError, match="unknown preset 'fast'; choose one of: auto, official"):
        get_sampling_preset("fast")


def test_stream_settings_take_an_explicit_grid_and_keep_old_job_keys():
    settings = StreamSettings(steps=4, shift=5.0, timesteps=(1000, 750, 500, 250))
    assert settings.time_grid()[1].item() == pytest.approx(937.5)
    assert settings.to_dict()["timesteps"] == [1000.0, 750.0, 500.0, 250.0]
    assert "timesteps" not in StreamSettings(steps=4).to_dict()  # manifests of runs without a grid are unchanged
    with pytest.raises(ValueError, match="lists 3 times for 4 steps"):
        StreamSettings(steps=4, timesteps=(1000, 500, 250))
    with pytest.raises(ValueError, match="strictly decreasing"):
        StreamSettings(steps=2, timesteps=(500, 750))
    with pytest.raises(ValueError, match="sdedit_strength < 1 needs the official grid"):
        StreamSettings(steps=2, timesteps=(1000, 500), sdedit_strength=0.5)
