"""Start a real ComfyUI server for host tests, when ``COMFYUI_DIR`` points at a checkout.

The server runs on 127.0.0.1 with ``--cpu`` and a throw-away base directory whose ``custom_nodes/`` holds a
link to this repository (as ``ComfyUI-TalkGen``) and whose ``input/`` holds ``example_inputs/``. The Python
that runs it is ``COMFYUI_PYTHON`` (a venv with ComfyUI's and this pack's requirements), else this one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.pack_import import REPO_ROOT

SKIP_REASON = "COMFYUI_DIR is not set: no real ComfyUI checkout to test against"


def comfyui_dir() -> Path | None:
    value = os.environ.get("COMFYUI_DIR")
    return Path(value) if value else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 10.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict, timeout: float = 30.0):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"POST {url} -> {exc.code}: {exc.read().decode(errors='replace')[:2000]}") from exc


@contextmanager
def running_comfyui(base_dir: Path, startup_timeout: float = 240.0) -> Iterator[str]:
    root = comfyui_dir()
    assert root is not None, SKIP_REASON
    (base_dir / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base_dir / "custom_nodes" / "ComfyUI-TalkGen").symlink_to(REPO_ROOT, target_is_directory=True)
    shutil.copytree(REPO_ROOT / "example_inputs", base_dir / "input", dirs_exist_ok=True)
    (base_dir / "frontend").mkdir(exist_ok=True)
    port = _free_port()
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    log = open(base_dir / "server.log", "wb")
    process = subprocess.Popen(
        [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--base-directory", str(base_dir), "--front-end-root", str(base_dir / "frontend"),
         "--database-url", "sqlite:///:memory:", "--disable-auto-launch", "--disable-api-nodes"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"ComfyUI exited early:\n{(base_dir / 'server.log').read_text()[-3000:]}")
            try:
                get_json(f"{url}/system_stats", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise AssertionError("ComfyUI did not answer within the startup timeout") from None
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def run_prompt(url: str, graph: dict, timeout: float = 600.0) -> dict:
    """Queue an API-format graph and wait for its history entry; returns the outputs by node id."""
    answer = post_json(f"{url}/prompt", {"prompt": graph})
    assert not answer.get("node_errors"), answer
    prompt_id = answer["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = get_json(f"{url}/history/{prompt_id}")
        if prompt_id in history:
            entry = history[prompt_id]
            status = entry.get("status", {})
            assert status.get("status_str") != "error", json.dumps(status)[:3000]
            if status.get("completed", True):
                return entry.get("outputs", {})
        time.sleep(1)
    raise AssertionError(f"prompt {prompt_id} did not finish within {timeout} s")
