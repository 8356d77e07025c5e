"""A small client for ComfyUI's HTTP API, standard library only.

Routes used: ``POST /upload/image`` (accepts any file, so also audio and video), ``POST /prompt``,
``GET /history/{prompt_id}``, ``GET /queue``, ``GET /view``, ``GET /object_info``, ``POST /interrupt`` and
``POST /queue`` (delete). Completion is detected by polling ``/queue`` then ``/history/{prompt_id}`` with
a growing delay; the websocket is not needed for that. A prompt in neither was forgotten (the server
restarted, or its history was cleared): ComfyUI moves a prompt from the queue to the history under one
lock, so looking at the queue first never mistakes a prompt that just finished for a forgotten one. A
server that stops answering is waited for (:class:`ServerWait`): restarting with a 14B model takes
minutes. Proxy settings from the environment are ignored: a ComfyUI server is addressed directly.
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from talkgen_core.files.atomic import write_bytes_atomic


class ComfyUIError(RuntimeError):
    """The server answered with an error, or a prompt did not finish successfully."""


class ServerUnreachable(ComfyUIError):
    """No answer from the server (refused, reset, timed out)."""


class PromptRejected(ComfyUIError):
    """``POST /prompt`` refused the workflow (validation errors per node)."""


class PromptFailed(ComfyUIError):
    """The prompt ran and stopped with an execution error or an interruption."""


class ServerGone(ServerUnreachable):
    """The server stayed silent for longer than :attr:`ServerWait.limit`."""


class PromptForgotten(ComfyUIError):
    """The server no longer knows the prompt: neither queued nor in its history (it restarted)."""


class PromptTimeout(ComfyUIError):
    """The prompt did not finish within the allowed time."""


class PromptCancelled(ComfyUIError):
    """Waiting was cancelled by the caller (Ctrl-C)."""


@dataclass(frozen=True)
class UploadedFile:
    name: str
    subfolder: str
    type: str

    @property
    def reference(self) -> str:
        """The value a loader node's combo input takes: ``subfolder/name`` or just ``name``."""
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name


@dataclass(frozen=True)
class OutputFile:
    node_id: str
    filename: str
    subfolder: str
    type: str


@dataclass(frozen=True)
class PollSchedule:
    """Delays between ``/history`` polls: ``first``, growing by ``growth`` up to ``longest`` seconds."""

    first: float = 0.25
    growth: float = 1.5
    longest: float = 5.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.growth, self.longest)


@dataclass(frozen=True)
class ServerWait:
    """How long a silent server is waited for (``limit`` seconds), polled with a growing delay."""

    limit: float = 600.0
    schedule: PollSchedule = PollSchedule(first=1.0, growth=1.5, longest=15.0)


class ComfyUIClient:
    def __init__(self, base_url: str, request_timeout: float = 60.0, upload_timeout: float = 600.0) -> None:
        parsed = urllib.parse.urlsplit(base_url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"server address {base_url!r} is not an http URL; write it like http://127.0.0.1:8188")
        self.base_url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self.request_timeout = request_timeout
        self.upload_timeout = upload_timeout
        self.client_id = uuid.uuid4().hex
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"ComfyUIClient({self.base_url!r})"

    # -- plumbing ----------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        route: str,
        *,
        query: dict[str, str] | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> bytes:
        url = self.base_url + route + (f"?{urllib.parse.urlencode(query)}" if query else "")
        request = urllib.request.Request(url, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with self._opener.open(request, timeout=timeout or self.request_timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(method, route, exc) from exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnreachable(f"{self.base_url} did not answer {method} {route}: {reason}") from exc

    def _get_json(self, route: str, query: dict[str, str] | None = None) -> Any:
        return _parse_json(self._request("GET", route, query=query), route)

    def _post_json(self, route: str, payload: Any) -> Any:
        raw = self._request("POST", route, body=json.dumps(payload).encode("utf-8"), content_type="application/json")
        return _parse_json(raw, route) if raw.strip() else None

    # -- routes ------------------------------------------------------------------------------------

    def object_info(self, class_type: str | None = None) -> dict[str, Any]:
        route = "/object_info" + (f"/{urllib.parse.quote(class_type)}" if class_type else "")
        return self._get_json(route)

    def upload_file(
        self,
        path: str | Path,
        name: str | None = None,
        *,
        kind: str = "input",
        subfolder: str = "",
        overwrite: bool = True,
    ) -> UploadedFile:
        """Upload any file into the server's input (or temp/output) folder under ``name``."""
        path = Path(path)
        name = name or path.name
        fields = {"type": kind, "subfolder": subfolder, "overwrite": "true" if overwrite else "false"}
        body, content_type = encode_multipart(fields, "image", name, path.read_bytes())
        raw = self._request("POST", "/upload/image", body=body, content_type=content_type, timeout=self.upload_timeout)
        answer = _parse_json(raw, "/upload/image")
        if not isinstance(answer, dict) or "name" not in answer:
            raise ComfyUIError(f"{self.base_url} /upload/image answered without a file name: {raw[:200]!r}")
        return UploadedFile(str(answer["name"]), str(answer.get("subfolder", "")), str(answer.get("type", kind)))

    def queue_prompt(self, workflow: dict[str, Any], prompt_id: str | None = None) -> str:
        """Queue an API-format workflow; returns its prompt id. Raises :class:`PromptRejected`."""
        prompt_id = prompt_id or str(uuid.uuid4())
        payload = {"prompt": workflow, "client_id": self.client_id, "prompt_id": prompt_id}
        answer = self._post_json("/prompt", payload)
        if not isinstance(answer, dict) or "prompt_id" not in answer:
            raise ComfyUIError(f"{self.base_url} /prompt answered without a prompt_id: {answer!r}")
        if answer.get("node_errors"):
            # queued, but some outputs were dropped: running it would give silently incomplete results
            self.cancel_prompt(str(answer["prompt_id"]))
            details = describe_node_errors(answer["node_errors"])
            raise PromptRejected(f"the server dropped outputs with errors: {details}")
        return str(answer["prompt_id"])

    def queued_prompt_ids(self) -> set[str]:
        """Ids of the prompts running or waiting on the server (``GET /queue``)."""
        answer = self._get_json("/queue")
        if not isinstance(answer, dict):
            raise ComfyUIError(f"{self.base_url} /queue answered {answer!r}, not the queue")
        items = [*(answer.get("queue_running") or []), *(answer.get("queue_pending") or [])]
        return {str(item[1]) for item in items if isinstance(item, (list, tuple)) and len(item) > 1}

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of a finished prompt, or ``None`` while it is queued or running."""
        answer = self._get_json(f"/history/{urllib.parse.quote(prompt_id)}")
        if isinstance(answer, dict) and isinstance(answer.get(prompt_id), dict):
            return answer[prompt_id]
        return None

    def download(self, output: OutputFile, destination: str | Path) -> Path:
        """Fetch one output through ``/view`` into ``destination`` (written whole, then renamed)."""
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        query = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        data = self._request("GET", "/view", query=query, timeout=self.upload_timeout)
        write_bytes_atomic(destination, data)  # an unpredictable temp beside it, renamed when whole
        return destination

    def cancel_prompt(self, prompt_id: str) -> None:
        """Remove a prompt from the queue, or interrupt it when it is the one running. Best effort."""
        for route, payload in (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id})):
            try:
                self._post_json(route, payload)
            except ComfyUIError:
                pass

    def wait_until_answering(self, wait: ServerWait, cancel: threading.Event | None = None) -> None:
        """Return once the server answers; :class:`ServerGone` after ``wait.limit`` seconds of silence."""
        deadline = time.monotonic() + wait.limit
        for delay in wait.schedule.delays():
            try:
                self.queued_prompt_ids()
                return
            except ServerUnreachable as exc:
                if time.monotonic() + delay > deadline:
                    raise ServerGone(
                        f"{exc}; still no answer after {wait.limit:g} s: start the server again, or give a "
                        "restart more time with --server-wait SECONDS"
                    ) from exc
            _pause(delay, cancel, "stopped waiting for the server")

    def wait_for_prompt(
        self,
        prompt_id: str,
        timeout: float,
        cancel: threading.Event | None = None,
        schedule: PollSchedule = PollSchedule(),
        server_wait: ServerWait = ServerWait(),
    ) -> list[OutputFile]:
        """Poll until the prompt finishes; return its saved outputs (type ``output``).

        A silent server is waited for (up to ``server_wait.limit``), then polling goes on; raises
        :class:`PromptForgotten` as soon as the server no longer knows the prompt.
        """
        deadline = time.monotonic() + timeout
        delays = schedule.delays()
        while True:
            delay = next(delays)
            try:
                queued = prompt_id in self.queued_prompt_ids()  # first: see the module docstring
                entry = self.history(prompt_id)
            except ServerUnreachable:
                self.wait_until_answering(server_wait, cancel)
                continue
            if entry is not None:
                error = execution_error(entry)
                if error:
                    raise PromptFailed(error)
                return saved_outputs(entry)
            if not queued:
                raise PromptForgotten(
                    f"{self.base_url} no longer knows prompt {prompt_id} (not queued, not in its history): "
                    "it restarted or its history was cleared"
                )
            if time.monotonic() + delay > deadline:
                raise PromptTimeout(f"prompt {prompt_id} did not finish within {timeout:g} s")
            _pause(delay, cancel, f"stopped waiting for prompt {prompt_id}")


def _pause(seconds: float, cancel: threading.Event | None, cancelled: str) -> None:
    """Sleep, or raise :class:`PromptCancelled` with ``cancelled`` as soon as ``cancel`` is set."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise PromptCancelled(cancelled)


def encode_multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with text fields and one file; returns (body, content type)."""
    boundary = f"talkgen-{uuid.uuid4().hex}"
    safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    mime = mimetypes.guess_type(safe_name)[0] or "application/octet-stream"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode("utf-8")
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{safe_name}"\r\n'
        f"Content-Type: {mime}\r\n\r\n".encode("utf-8")
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode("utf-8"))
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def saved_outputs(entry: dict[str, Any]) -> list[OutputFile]:
    """Files a finished prompt saved (``type == "output"``), in node-id then listing order.

    History lists them per node under keys like ``images`` (SaveImage, and SaveVideo with ``animated``),
    ``gifs`` or ``audio``; previews (``type == "temp"``) are skipped.
    """
    found: list[OutputFile] = []
    outputs = entry.get("outputs") or {}
    for node_id in sorted(outputs, key=lambda n: (0, int(n)) if str(n).isdigit() else (1, 0)):
        for items in (outputs[node_id] or {}).values():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item and item.get("type", "output") == "output":
                    subfolder = str(item.get("subfolder", ""))
                    found.append(OutputFile(str(node_id), str(item["filename"]), subfolder, "output"))
    return found


def execution_error(entry: dict[str, Any]) -> str | None:
    """A one-line reason when a history entry records a failed or interrupted run, else ``None``."""
    status = entry.get("status") or {}
    messages = status.get("messages") or []
    for message in messages:
        if not (isinstance(message, (list, tuple)) and len(message) == 2 and isinstance(message[1], dict)):
            continue
        event, data = message
        where = f"node {data.get('node_id')} ({data.get('node_type')})"
        if event == "execution_error":
            message = str(data.get("exception_message", "")).strip()
            return f"{where} raised {data.get('exception_type', 'an error')}: {message}"
        if event == "execution_interrupted":
            return f"interrupted on the server at {where}"
    if status.get("status_str") == "error":
        return "the server reports the prompt as failed (no error message in its history)"
    return None


def describe_node_errors(node_errors: Any) -> str:
    """Flatten ``/prompt``'s ``node_errors`` to one line: node id, class and each message."""
    if not isinstance(node_errors, dict):
        return str(node_errors)
    lines: list[str] = []
    for node_id, info in node_errors.items():
        info = info if isinstance(info, dict) else {}
        reasons = [
            f"{e.get('message', '')}: {e.get('details', '')}".strip(": ") if isinstance(e, dict) else str(e)
            for e in info.get("errors", [])
        ]
        lines.append(f"node {node_id} ({info.get('class_type', '?')}): {'; '.join(reasons) or 'invalid'}")
    return " | ".join(lines)


def _http_error(method: str, route: str, exc: urllib.error.HTTPError) -> ComfyUIError:
    try:
        body = exc.read().decode("utf-8", errors="replace")
    except OSError:
        body = ""
    try:
        answer = json.loads(body) if body else None
    except json.JSONDecodeError:
        answer = None
    if route == "/prompt" and isinstance(answer, dict):
        error = answer.get("error")
        message = error.get("message", "") if isinstance(error, dict) else str(error or "")
        details = describe_node_errors(answer.get("node_errors")) if answer.get("node_errors") else ""
        if not details and isinstance(error, dict):
            details = str(error.get("details", ""))
        return PromptRejected(f"the server refused the workflow: {message}" + (f" ({details})" if details else ""))
    snippet = body.strip().replace("\n", " ")[:300]
    detail = f": {snippet}" if snippet else ""
    return ComfyUIError(f"{method} {route} failed with HTTP {exc.code} {exc.reason}{detail}")


def _parse_json(raw: bytes, route: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ComfyUIError(f"{route} did not answer with JSON: {raw[:200]!r}") from exc
