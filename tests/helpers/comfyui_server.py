"""Start a real ComfyUI server for host tests, when ``COMFYUI_DIR`` points at a checkout.

The server runs on 127.0.0.1 with ``--cpu``, its real frontend, and a throw-away base directory (its own
``--base-directory``: custom_nodes, models, input, output and temp) whose ``custom_nodes/`` holds a link to
this repository (as ``ComfyUI-TalkGen``). Nothing is copied into ``input/``: the pack installs its example
inputs itself, as it does for a user. The Python that runs it is ``COMFYUI_PYTHON`` (a venv with ComfyUI's and
this pack's requirements, as ``.ci/run`` makes it), else this one.
"""

from __future__ import annotations

import json
import os
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
            body = response.read()
            return json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"POST {url} -> {exc.code}: {exc.read().decode(errors='replace')[:2000]}") from exc


@contextmanager
def running_comfyui(base_dir: Path, startup_timeout: float = 240.0, block_external: bool = True) -> Iterator[str]:
    """The server's URL while it runs. ``block_external`` (``--disable-api-nodes``) also makes the server send a
    content policy that keeps its frontend from reaching other hosts; frontend tests turn it off and answer
    such requests inside the browser instead."""
    root = comfyui_dir()
    assert root is not None, SKIP_REASON
    (base_dir / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base_dir / "custom_nodes" / "ComfyUI-TalkGen").symlink_to(REPO_ROOT, target_is_directory=True)
    port = _free_port()
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    log = open(base_dir / "server.log", "wb")
    process = subprocess.Popen(
        [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--base-directory", str(base_dir), "--database-url", "sqlite:///:memory:", "--disable-auto-launch",
         *(["--disable-api-nodes"] if block_external else [])],
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


def queue_prompt(url: str, graph: dict) -> str:
    """Queue an API-format graph (it must pass validation); returns its prompt id."""
    answer = post_json(f"{url}/prompt", {"prompt": graph})
    assert not answer.get("node_errors"), answer
    return answer["prompt_id"]


def wait_for_history(url: str, prompt_id: str, timeout: float = 600.0) -> dict:
    """The prompt's history entry once it has finished (successfully or not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = get_json(f"{url}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            return history[prompt_id]
        time.sleep(0.5)
    raise AssertionError(f"prompt {prompt_id} did not finish within {timeout} s")


def error_message(entry: dict) -> str:
    """The execution_error text of a failed prompt's history entry ("" when it did not fail that way)."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_message')}"
    return ""


def run_prompt(url: str, graph: dict, timeout: float = 600.0) -> dict:
    """Queue an API-format graph, wait for it and require success; returns the outputs by node id."""
    entry = wait_for_history(url, queue_prompt(url, graph), timeout)
    status = entry.get("status", {})
    assert status.get("status_str") == "success", json.dumps(status)[:3000]
    return entry.get("outputs", {})


def output_file(base_dir: Path, record: dict) -> Path:
    """The file behind a node's ``{filename, subfolder, type}`` output record."""
    return base_dir / record["type"] / record.get("subfolder", "") / record["filename"]
