"""A job directory: everything needed to resume an interrupted streaming run exactly.

Layout::

    job_dir/
      manifest.json          settings, input hash, chunk count, finished chunk count
      chunk_00000.safetensors   final latents of chunk 0   [1, z, T, h, w]
      chunk_00001.safetensors   ...

Each chunk's latents are written (atomically: temp file + rename) as soon as it finishes, then the manifest
is updated. Since every chunk's noise comes from ``(seed, chunk index)`` and its context from the previous
chunk's saved latents, a resumed run replays the saved chunks and continues bit-identically. Resuming with
different settings or inputs is refused with a list of what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class ResumeMismatch(ValueError):
    """The job directory was made with other settings or inputs."""


def hash_inputs(items: Iterable[Any]) -> str:
    """SHA-256 over input files (by content), tensors/arrays (shape, dtype, bytes) and plain values."""
    digest = hashlib.sha256()
    for item in items:
        if isinstance(item, Path) or (isinstance(item, str) and os.path.isfile(item)):
            digest.update(b"file:")
            with open(item, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        elif isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous()
            digest.update(f"tensor:{tuple(t.shape)}:{t.dtype}:".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(item, np.ndarray):
            a = np.ascontiguousarray(item)
            digest.update(f"array:{a.shape}:{a.dtype}:".encode())
            digest.update(a.tobytes())
        else:
            digest.update(f"value:{json.dumps(item, sort_keys=True, default=str)}".encode())
        digest.update(b"|")
    return digest.hexdigest()


def chunk_seed(seed: int, chunk_index: int) -> int:
    """A 63-bit seed for one chunk's noise, derived from the run seed and the chunk index only."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(chunk_index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFFFFFFFFFFFFFF


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{name}: (absent) -> {new[key]!r}")
            elif key not in new:
                out.append(f"{name}: {old[key]!r} -> (absent)")
            else:
                out.extend(_differences(old[key], new[key], name))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


class JobDir:
    """Per-chunk latents plus a manifest, for resumable runs.

    Args:
        path: the directory (created if needed).
        settings: JSON-serialisable settings that determine the output (compared on resume).
        inputs_hash: from :func:`hash_inputs` over the inputs (compared on resume).
        num_chunks: chunk count of the plan.
        resume: continue a run found in ``path``. Without it, a directory that already holds a run is refused
            rather than overwritten.
    """

    def __init__(self, path: Union[str, Path], settings: dict, inputs_hash: str, num_chunks: int,
                 resume: bool = False) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings, sort_keys=True, default=str))
        self.inputs_hash = inputs_hash
        self.num_chunks = num_chunks
        manifest_path = self.path / MANIFEST
        if manifest_path.is_file():
            if not resume:
                raise FileExistsError(
                    f"{self.path} already holds a job ({MANIFEST}); pass resume=True (--resume) to continue it, "
                    "or choose an empty job directory"
                )
            manifest = json.loads(manifest_path.read_text())
            self._check_same_job(manifest)
            self.finished = self._count_finished(int(manifest["finished_chunks"]))
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self.finished = 0
            self._write_manifest()

    def _check_same_job(self, manifest: dict) -> None:
        if manifest.get("version") != FORMAT_VERSION:
            raise ResumeMismatch(f"{self.path}: manifest version {manifest.get('version')} is not {FORMAT_VERSION}")
        problems = _differences(manifest.get("settings", {}), self.settings)
        if manifest.get("inputs_sha256") != self.inputs_hash:
            problems.append("inputs: the image/video/audio differ from the ones the job was started with")
        if manifest.get("num_chunks") != self.num_chunks:
            problems.append(f"num_chunks: {manifest.get('num_chunks')} -> {self.num_chunks}")
        if problems:
            raise ResumeMismatch(
                f"cannot resume {self.path} with different settings; differences (saved -> requested): "
                + "; ".join(problems)
                + ". Use the saved settings, or start a new job directory."
            )

    def _count_finished(self, recorded: int) -> int:
        """Finished chunks = the recorded count, cut at the first missing latent file."""
        for index in range(recorded):
            if not self.chunk_path(index).is_file():
                return index
        return recorded

    def _write_manifest(self) -> None:
        manifest = {
            "version": FORMAT_VERSION,
            "settings": self.settings,
            "inputs_sha256": self.inputs_hash,
            "num_chunks": self.num_chunks,
            "finished_chunks": self.finished,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _atomic_write_bytes(self.path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())

    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk_{index:05d}.safetensors"

    def is_finished(self, index: int) -> bool:
        return index < self.finished

    def save_chunk(self, index: int, latents: torch.Tensor) -> None:
        """Store chunk ``index``'s final latents ``[1, z, T, h, w]``; chunks must be saved in order."""
        if index != self.finished:
            raise ValueError(f"chunk {index} saved out of order: {self.finished} chunks are finished")
        path = self.chunk_path(index)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({"latents": latents.detach().to("cpu", torch.float32).contiguous()}, str(tmp))
        os.replace(tmp, path)
        self.finished = index + 1
        self._write_manifest()

    def load_chunk(self, index: int) -> torch.Tensor:
        if not self.is_finished(index):
            raise ValueError(f"chunk {index} of {self.path} is not finished")
        return load_file(str(self.chunk_path(index)))["latents"]

    @property
    def complete(self) -> bool:
        return self.finished >= self.num_chunks
