"""The pack in ComfyUI's real frontend (headless Chromium against a real server): each UI workflow loads with
every node known and no console error, its prompt is exactly its API twin, the missing-model dialog names
each model's folder, and Run on the demo writes the video."""

from __future__ import annotations

import json
import time

import pytest
from helpers.comfyui_server import SKIP_REASON, comfyui_dir, get_json, output_file, post_json, running_comfyui
from helpers.frontend import frontend, skip_reason
from helpers.pack_import import REPO_ROOT

pytestmark = [pytest.mark.comfyui,
              pytest.mark.skipif(comfyui_dir() is None, reason=SKIP_REASON),
              pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]
WORKFLOWS = REPO_ROOT / "workflows"
NAMES = sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json"))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("comfyui-frontend")


@pytest.fixture(scope="module")
def server(base):
    with running_comfyui(base, block_external=False) as url:
        post_json(f"{url}/api/settings", {"Comfy.TutorialCompleted": True})  # no template browser on first open
        yield url


@pytest.fixture(scope="module")
def tab(server):
    with frontend(server) as tab:
        yield tab


@pytest.mark.parametrize("name", NAMES)
def test_ui_workflow_loads_cleanly_and_prompts_as_its_api_twin(tab, name):
    tab.console_errors.clear()
    tab.load_workflow(json.loads((WORKFLOWS / f"{name}.json").read_text()))
    assert tab.unregistered_node_types() == []
    assert tab.page.get_by_text("Missing Node Types").count() == 0
    assert tab.console_errors == [] and tab.page_errors == []
    assert tab.prompt() == json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def test_missing_models_are_shown_with_their_folders(tab):
    tab.load_workflow(json.loads((WORKFLOWS / "infinitetalk_image_to_video.json").read_text()))
    tab.page.get_by_text("View details").first.click()
    tab.page.get_by_text("Missing Models").first.wait_for(timeout=10_000)
    panel = tab.page.locator("body").inner_text()
    for folder in ("diffusion_models", "model_patches", "audio_encoders", "vae", "text_encoders", "clip_vision"):
        assert folder in panel
    assert "Unknown" not in panel
    assert tab.page.get_by_role("button", name="Download").count() >= 6


def test_run_on_the_demo_writes_the_video(tab, server, base):
    tab.load_workflow(json.loads((WORKFLOWS / "talkgen_demo.json").read_text()))
    before = set(get_json(f"{server}/history"))
    tab.page.get_by_role("button", name="Run").first.click()
    deadline = time.monotonic() + 300
    while not (new := set(get_json(f"{server}/history")) - before):
        assert time.monotonic() < deadline, "Run queued nothing"
        time.sleep(0.5)
    prompt_id = new.pop()
    while (entry := get_json(f"{server}/history/{prompt_id}")[prompt_id])["status"].get("completed") is None:
        assert time.monotonic() < deadline, "the demo did not finish"
        time.sleep(0.5)
    assert entry["status"]["status_str"] == "success", entry["status"]
    record = entry["outputs"]["9"]["images"][0]
    assert output_file(base, record).stat().st_size > 1000
    assert tab.console_errors == [] and tab.page_errors == []
