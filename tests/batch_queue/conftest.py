"""Fixtures for the queue tests: small media files, a test workflow, and fake ComfyUI servers.

``FakeComfyUI`` stands in for ComfyUI's HTTP API on 127.0.0.1, faithful enough to test the queue client
end to end. It implements ``/upload/image`` (multipart, validated like the real route), ``/prompt``
(validates the graph and answers 400 with ``node_errors`` like ComfyUI), ``/history/{id}`` (a prompt
"runs" for a few polls, then finishes with outputs or an ``execution_error``), ``/view``,
``/object_info``, ``/queue`` (GET lists the unfinished prompts as running; POST deletes) and ``/interrupt``.
Every request is recorded. ``overlapping_prompts`` counts prompts submitted while an earlier one was
unfinished, to check one job in flight per server. ``restart(down_for)`` stops listening (connections are
refused) and comes back on the same port with an empty queue and history, as a restarted ComfyUI does;
``forgetful=N`` makes the server lose each of its first N prompts at their first poll.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# class_type -> {input name: kind}; kind "upload" = a file in the input folder, "link" = [id, index]
NODE_SCHEMAS: dict[str, dict[str, str]] = {
    "LoadImage": {"image": "upload"},
    "LoadAudio": {"audio": "upload"},
    "LoadVideo": {"file": "upload"},
    "TalkGenFakeDub": {"video": "link", "audio": "link", "seed": "int", "steps": "int", "audio_cfg": "float"},
    "SaveVideo": {"video": "link", "filename_prefix": "str", "format": "str", "codec": "str"},
    "SaveImage": {"images": "link", "filename_prefix": "str"},
    "PreviewImage": {"images": "link"},
}
SAVE_SUFFIX = {"SaveVideo": ".mp4", "SaveImage": ".png"}

FailRule = Callable[[dict[str, Any]], "str | None"]


def fail_on_seed_13(prompt: dict[str, Any]) -> str | None:
    """Default execution failure: any node whose literal ``seed`` is 13 raises during the run."""
    for node in prompt.values():
        if node["inputs"].get("seed") == 13:
            return "fake sampler failure for seed 13"
    return None


def _reason(kind: str, message: str, details: str) -> dict[str, str]:
    """An error entry shaped like ComfyUI's (``type``, ``message``, ``details``)."""
    return {"type": kind, "message": message, "details": details}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakePrompt:
    prompt: dict[str, Any]
    polls_left: int
    history: dict[str, Any] | None = None


@dataclass
class FakeComfyUI:
    polls_until_done: int = 2
    fail_rule: FailRule = fail_on_seed_13
    requests: list[RecordedRequest] = field(default_factory=list)
    inputs: dict[str, bytes] = field(default_factory=dict)  # "subfolder/name" or "name" -> bytes
    outputs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (subfolder, filename) -> bytes
    prompts: dict[str, FakePrompt] = field(default_factory=dict)
    overlapping_prompts: int = 0
    deleted: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    forgetful: int = 0  # the first N prompts vanish at their first history poll
    forgotten: int = 0
    restart_at_poll: tuple[int, float] | None = None  # (n, down_for): restart() at the n-th history poll
    history_polls: int = 0
    restarts: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._counter = 0
        self._handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.up = False
        self._comeback: threading.Timer | None = None

    def start(self) -> FakeComfyUI:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.up = True
        return self

    def stop(self) -> None:
        if self._comeback is not None:
            self._comeback.cancel()
        self._go_down()

    def _go_down(self) -> None:
        if self.up:
            self.up = False
            self.httpd.shutdown()
            self.httpd.server_close()

    def restart(self, down_for: float) -> None:
        """Go down now (refusing connections) and come back after ``down_for`` s with no queue or history."""
        self._go_down()
        with self.lock:
            self.prompts.clear()
            self.restarts += 1

        def come_back() -> None:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
            self.start()

        self._comeback = threading.Timer(down_for, come_back)
        self._comeback.daemon = True
        self._comeback.start()

    def routes_called(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- route handlers: (status, JSON or bytes) -----------------------------------------------------

    def upload(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data; boundary="):
            return 400, {"error": "expected multipart/form-data"}
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        if not message.is_multipart():
            return 400, {"error": "body is not multipart"}
        fields: dict[str, str] = {}
        file_name, file_bytes = None, None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "image":
                file_name, file_bytes = part.get_filename(), part.get_payload(decode=True)
            else:
                fields[name] = part.get_payload(decode=True).decode()
        if not file_name or file_bytes is None:
            return 400, {"error": "no image field with a filename"}
        if fields.get("type", "input") not in ("input", "temp", "output"):
            return 400, {"error": f"bad type {fields.get('type')}"}
        if fields.get("overwrite", "false") not in ("true", "false", "1", "0"):
            return 400, {"error": "bad overwrite"}
        subfolder = fields.get("subfolder", "")
        if ".." in subfolder or ".." in file_name or "/" in file_name:
            return 400, {"error": "path escapes the input folder"}
        reference = f"{subfolder}/{file_name}" if subfolder else file_name
        with self.lock:
            self.inputs[reference] = file_bytes
        return 200, {"name": file_name, "subfolder": subfolder, "type": fields.get("type", "input")}

    def queue_prompt(self, payload: Any) -> tuple[int, Any]:
        if not isinstance(payload, dict) or not isinstance(payload.get("prompt"), dict):
            return 400, {"error": _reason("no_prompt", "No prompt provided", ""), "node_errors": {}}
        prompt = payload["prompt"]
        for node_id, node in prompt.items():
            if node.get("class_type") not in NODE_SCHEMAS:
                message = f"Cannot execute because node {node.get('class_type')} does not exist."
                return 400, {"error": _reason("invalid_prompt", message, f"Node ID '#{node_id}'"), "node_errors": {}}
        node_errors = self._validate(prompt)
        if node_errors:
            error = _reason("prompt_outputs_failed_validation", "Prompt outputs failed validation", "")
            return 400, {"error": error, "node_errors": node_errors}
        with self.lock:
            if any(p.history is None for p in self.prompts.values()):
                self.overlapping_prompts += 1
            prompt_id = payload.get("prompt_id") or f"fake-{len(self.prompts)}"
            self.prompts[prompt_id] = FakePrompt(prompt, self.polls_until_done)
            self._counter += 1
            number = self._counter
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": {}}

    def history(self, prompt_id: str) -> tuple[int, Any]:
        with self.lock:
            self.history_polls += 1
            if self.restart_at_poll is not None and self.history_polls == self.restart_at_poll[0]:
                threading.Thread(target=self.restart, args=(self.restart_at_poll[1],), daemon=True).start()
                return 200, {}
            state = self.prompts.get(prompt_id)
            if state is None:
                return 200, {}
            if state.history is None and self.forgotten < self.forgetful:
                del self.prompts[prompt_id]  # as if the server restarted between two polls
                self.forgotten += 1
                return 200, {}
            if state.history is None:
                if state.polls_left > 0:
                    state.polls_left -= 1
                    return 200, {}
                state.history = self._execute(prompt_id, state.prompt)
            return 200, {prompt_id: state.history}

    def queue_listing(self) -> tuple[int, Any]:
        with self.lock:
            running = [[n, pid, p.prompt, {}, []] for n, (pid, p) in enumerate(self.prompts.items())
                       if p.history is None]
        return 200, {"queue_running": running, "queue_pending": []}

    def view(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        if query.get("type", ["output"])[0] != "output":
            return 404, b""
        key = (query.get("subfolder", [""])[0], query.get("filename", [""])[0])
        with self.lock:
            data = self.outputs.get(key)
        return (200, data) if data is not None else (404, b"")

    def _validate(self, prompt: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        for node_id, node in prompt.items():
            reasons = []
            for name, kind in NODE_SCHEMAS[node["class_type"]].items():
                value = node.get("inputs", {}).get(name)
                if value is None and kind != "str":
                    reasons.append(_reason("required_input_missing", "Required input is missing", name))
                elif kind == "upload" and value not in self.inputs:
                    reasons.append(_reason("value_not_in_list", "Value not in list",
                                           f"{name}: '{value}' not in {sorted(self.inputs)}"))
                elif kind == "link" and not (isinstance(value, list) and str(value[0]) in prompt):
                    reasons.append({"type": "bad_linked_input", "message": "Bad linked input", "details": name})
                elif kind == "int" and (not isinstance(value, int) or value < 1):
                    reasons.append(_reason("value_smaller_than_min", "Value smaller than min", f"{name} {value} < 1"))
                elif kind == "float" and not isinstance(value, float):
                    reasons.append(_reason("invalid_input_type", "Invalid type", f"{name}: {value!r}"))
            if reasons:
                errors[node_id] = {"errors": reasons, "dependent_outputs": [], "class_type": node["class_type"]}
        return errors

    def _execute(self, prompt_id: str, prompt: dict[str, Any]) -> dict[str, Any]:
        start = ["execution_start", {"prompt_id": prompt_id, "timestamp": 0}]
        failure = self.fail_rule(prompt)
        if failure:
            node_id = next(n for n, node in prompt.items() if node["class_type"] == "TalkGenFakeDub")
            error = {"prompt_id": prompt_id, "node_id": node_id, "node_type": "TalkGenFakeDub", "executed": [],
                     "exception_message": failure, "exception_type": "RuntimeError", "traceback": [],
                     "current_inputs": [], "current_outputs": []}
            status = {"status_str": "error", "completed": False, "messages": [start, ["execution_error", error]]}
            return {"prompt": [0, prompt_id, prompt, {}, []], "outputs": {}, "status": status}
        media = b"|".join(self.inputs[node["inputs"][k]] for node in prompt.values()
                          for k, kind in NODE_SCHEMAS[node["class_type"]].items() if kind == "upload")
        settings = json.dumps({k: v for n in prompt.values() for k, v in n["inputs"].items()
                               if k in ("seed", "steps", "audio_cfg")}, sort_keys=True).encode()
        outputs: dict[str, Any] = {}
        for node_id, node in prompt.items():
            if node["class_type"] == "PreviewImage":
                outputs[node_id] = {"images": [{"filename": "preview_00001_.png", "subfolder": "", "type": "temp"}]}
            suffix = SAVE_SUFFIX.get(node["class_type"])
            if suffix is None:
                continue
            subfolder, _, stem = node["inputs"]["filename_prefix"].rpartition("/")
            filename = f"{stem}_00001_{suffix}"
            self.outputs[(subfolder, filename)] = media + b"|" + settings
            entry: dict[str, Any] = {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}]}
            if node["class_type"] == "SaveVideo":
                entry["animated"] = [True]
            outputs[node_id] = entry
        status = {"status_str": "success", "completed": True,
                  "messages": [start, ["execution_success", {"prompt_id": prompt_id}]]}
        return {"prompt": [0, prompt_id, prompt, {}, list(outputs)], "outputs": outputs, "status": status}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeComfyUI

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path[4:] if parsed.path.startswith("/api/") else parsed.path
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake = self.fake
        with fake.lock:
            fake.requests.append(RecordedRequest(method, path, query, headers, body))
        if method == "POST" and path == "/upload/image":
            status, answer = fake.upload(headers, body)
        elif method == "POST" and path == "/prompt":
            status, answer = fake.queue_prompt(json.loads(body or b"null"))
        elif method == "GET" and path.startswith("/history/"):
            status, answer = fake.history(urllib.parse.unquote(path[len("/history/"):]))
        elif method == "GET" and path == "/view":
            status, answer = fake.view(query)
        elif method == "GET" and path == "/object_info":
            status, answer = 200, {name: {"input": {"required": {k: [v] for k, v in schema.items()}}}
                                   for name, schema in NODE_SCHEMAS.items()}
        elif method == "GET" and path == "/queue":
            status, answer = fake.queue_listing()
        elif method == "POST" and path == "/queue":
            fake.deleted += json.loads(body or b"{}").get("delete", [])
            status, answer = 200, b""
        elif method == "POST" and path == "/interrupt":
            fake.interrupted.append(json.loads(body or b"{}").get("prompt_id", ""))
            status, answer = 200, b""
        else:
            status, answer = 404, b"404: Not Found"
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        is_json = not isinstance(answer, bytes)
        self.send_header("Content-Type", "application/json" if is_json else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# API format: LoadVideo + LoadAudio -> TalkGenFakeDub -> SaveVideo, plus a preview that must not be fetched
DUB_WORKFLOW = {
    "1": {"class_type": "LoadVideo", "inputs": {"file": "example.mp4"}},
    "2": {"class_type": "LoadAudio", "inputs": {"audio": "example.wav"}},
    "3": {
        "class_type": "TalkGenFakeDub",
        "inputs": {"video": ["1", 0], "audio": ["2", 0], "seed": 1, "steps": 4, "audio_cfg": 4.0},
    },
    "4": {
        "class_type": "SaveVideo",
        "inputs": {"video": ["3", 0], "filename_prefix": "video/ComfyUI", "format": "auto", "codec": "auto"},
    },
    "5": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
}


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A folder with a few distinct tiny "video" and "audio" files (contents are only compared, never decoded)."""
    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4", "d.mp4", "a.wav", "b.wav", "c.wav", "d.wav", "face.png"):
        (folder / name).write_bytes(f"content of {name}".encode())
    return folder


@pytest.fixture
def dub_workflow() -> dict[str, Any]:
    return json.loads(json.dumps(DUB_WORKFLOW))


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    path = tmp_path / "dub.api.json"
    path.write_text(json.dumps(DUB_WORKFLOW))
    return path


@pytest.fixture
def make_fake_server() -> Iterator[Callable[..., FakeComfyUI]]:
    """Factory for started fake servers (keywords go to :class:`FakeComfyUI`); all are stopped after the test."""
    started: list[FakeComfyUI] = []

    def make(**options: Any) -> FakeComfyUI:
        server = FakeComfyUI(**options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def fake_server(make_fake_server: Callable[..., FakeComfyUI]) -> FakeComfyUI:
    return make_fake_server()
