"""A job directory: everything needed to resume an interrupted streaming run exactly.

Layout::

    job_dir/
      manifest.json          settings, input hash, chunk count, finished chunk count
      chunk_00000.safetensors   final latents of chunk 0   [1, z, T, h, w]
      chunk_00001.safetensors   ...
      carry_00001.safetensors   what a strategy needs to continue after the newest chunk (sliding-window)

Each chunk's latents are written (atomically: temp file + rename) as soon as it finishes, then the manifest
is updated. Since every chunk's noise comes from ``(seed, chunk index)`` and its context from the previous
chunk's saved latents, a resumed run replays the saved chunks and continues bit-identically. Resuming with
different settings or inputs is refused with a list of what differs.

Each chunk file carries the job's key (:func:`job_key`: settings, inputs hash, chunk count), its index and a
checksum of its latents in its safetensors metadata. On resume every recorded chunk is checked: a file that is
missing, truncated, damaged or from another job is reported (:class:`ChunkFileWarning`, naming the file) and
that chunk and the ones after it are sampled again, never used. A damaged manifest is rebuilt from the chunk
files that belong to the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from talkgen_core.files.atomic import atomic_path, write_bytes_atomic
from talkgen_core.files.lock import LOCK_FILE

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_MANIFEST_KEYS = ("version", "settings", "inputs_sha256", "num_chunks", "finished_chunks")


class ResumeMismatch(ValueError):
    """The job directory was made with other settings or inputs."""


class ChunkFileWarning(UserWarning):
    """A saved chunk or manifest could not be used and is being recomputed or rebuilt."""


def _canonical(settings: dict) -> dict:
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def job_key(settings: dict, inputs_hash: str, num_chunks: int) -> str:
    """A short name for one job: a hash of everything a resume compares (settings, inputs, chunk count).

    Used as the folder name under a job root, so an identical re-run finds its folder again and any other
    job gets a folder of its own; and stamped into every chunk file, so a chunk from another job is never used.
    """
    identity = {"version": FORMAT_VERSION, "settings": _canonical(settings), "inputs_sha256": inputs_hash,
                "num_chunks": int(num_chunks)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def _latents_sha256(latents: torch.Tensor) -> str:
    return hashlib.sha256(latents.contiguous().view(torch.uint8).numpy()).hexdigest()


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
        elif hasattr(item, "hash_into"):  # data on disk (audio.spill.SpilledStack): hashed as its tensor would be
            item.hash_into(digest)
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
        self.settings = _canonical(settings)
        self.inputs_hash = inputs_hash
        self.num_chunks = num_chunks
        self.key = job_key(self.settings, inputs_hash, num_chunks)
        manifest_path = self.path / MANIFEST
        if manifest_path.is_file():
            if not resume:
                raise FileExistsError(
                    f"{self.path} already holds a job ({MANIFEST}); pass resume=True (--resume) to continue it, "
                    "or choose an empty job directory"
                )
            manifest = self._read_manifest(manifest_path)
            if manifest is None:  # damaged: the chunk files that carry this job's key say how far it got
                self.finished = self._count_finished(None)
                self._write_manifest()
            else:
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

    def _read_manifest(self, path: Path) -> Optional[dict]:
        """The manifest, or None (with a warning naming the file) when it cannot be read or parsed."""
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or any(key not in manifest for key in _MANIFEST_KEYS):
                raise ValueError(f"it lacks some of {', '.join(_MANIFEST_KEYS)}")
            int(manifest["finished_chunks"])
        except (OSError, ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            warnings.warn(f"job folder manifest {path} is damaged ({exc}); rebuilding it from the chunk files that "
                          "belong to this job", ChunkFileWarning, stacklevel=3)
            return None
        return manifest

    def _count_finished(self, recorded: Optional[int]) -> int:
        """Finished chunks = the recorded count (None: as far as the files go, for a rebuilt manifest), cut at
        the first chunk file that is missing or not usable."""
        for index in range(self.num_chunks if recorded is None else min(recorded, self.num_chunks)):
            problem = self._read_chunk(index)[1]
            if problem is None:
                continue
            if not (recorded is None and problem == "missing"):  # a rebuild expects the files to end somewhere
                warnings.warn(f"job folder {self.path}: chunk file {self.chunk_path(index).name} {problem}; "
                              f"chunk {index + 1} of {self.num_chunks} and the ones after it will be sampled again",
                              ChunkFileWarning, stacklevel=3)
            return index
        return self.num_chunks if recorded is None else min(recorded, self.num_chunks)

    def _read_chunk(self, index: int) -> tuple[Optional[torch.Tensor], Optional[str]]:
        """Chunk ``index``'s latents and None, or None and why its file cannot be used."""
        path = self.chunk_path(index)
        if not path.is_file():
            return None, "missing"
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                latents = handle.get_tensor("latents")
        except (OSError, SafetensorError, KeyError, ValueError) as exc:
            return None, f"cannot be read ({exc}; a truncated or damaged file)"
        if metadata.get("job") != self.key:
            return None, "belongs to another job (other inputs or settings) and is not used"
        if metadata.get("chunk") != str(index):
            return None, f"holds chunk {metadata.get('chunk')}, not chunk {index}"
        if metadata.get("shape") != json.dumps(list(latents.shape)) or latents.ndim != 5:
            return None, f"has the wrong shape {tuple(latents.shape)}"
        if metadata.get("sha256") != _latents_sha256(latents):
            return None, "is damaged (its latents do not match their checksum)"
        return latents, None

    def _write_manifest(self) -> None:
        manifest = {
            "version": FORMAT_VERSION,
            "settings": self.settings,
            "inputs_sha256": self.inputs_hash,
            "num_chunks": self.num_chunks,
            "finished_chunks": self.finished,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_bytes_atomic(self.path / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())

    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk_{index:05d}.safetensors"

    def is_finished(self, index: int) -> bool:
        return index < self.finished

    def save_chunk(self, index: int, latents: torch.Tensor,
                   carry: Optional[dict[str, torch.Tensor]] = None) -> None:
        """Store chunk ``index``'s final latents ``[1, z, T, h, w]``; chunks must be saved in order.

        ``carry``: tensors a strategy needs to continue exactly after this chunk that the chunks' latents do not
        hold (the sliding-window band). Only the newest chunk's carry is kept (``carry_NNNNN.safetensors``,
        written before the chunk, the previous one removed after the manifest names the new chunk)."""
        if index != self.finished:
            raise ValueError(f"chunk {index} saved out of order: {self.finished} chunks are finished")
        if carry is not None:
            self._save_tensors(self.carry_path(index), index, carry)
        tensor = latents.detach().to("cpu", torch.float32).contiguous()
        metadata = {"job": self.key, "chunk": str(index), "shape": json.dumps(list(tensor.shape)),
                    "sha256": _latents_sha256(tensor)}
        with atomic_path(self.chunk_path(index)) as temp:
            save_file({"latents": tensor}, str(temp), metadata=metadata)
        self.finished = index + 1
        self._write_manifest()
        if index:
            self.carry_path(index - 1).unlink(missing_ok=True)

    def carry_path(self, index: int) -> Path:
        return self.path / f"carry_{index:05d}.safetensors"

    def _save_tensors(self, path: Path, index: int, tensors: dict[str, torch.Tensor]) -> None:
        named = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in tensors.items()}
        digest = hashlib.sha256()
        for name in sorted(named):
            digest.update(name.encode() + _latents_sha256(named[name]).encode())
        with atomic_path(path) as temp:
            save_file(named, str(temp), metadata={"job": self.key, "chunk": str(index), "sha256": digest.hexdigest()})

    def load_carry(self, index: int) -> Optional[dict[str, torch.Tensor]]:
        """The carry saved with chunk ``index``, or None when it is missing, damaged or another job's."""
        path = self.carry_path(index)
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except (OSError, SafetensorError, KeyError, ValueError):
            return None
        digest = hashlib.sha256()
        for name in sorted(tensors):
            digest.update(name.encode() + _latents_sha256(tensors[name]).encode())
        if metadata.get("job") != self.key or metadata.get("chunk") != str(index) or \
                metadata.get("sha256") != digest.hexdigest():
            return None
        return tensors

    def discard_from(self, index: int) -> None:
        """Forget chunks ``index`` and later (they will be sampled and saved again)."""
        self.finished = min(self.finished, index)
        self._write_manifest()

    def load_chunk(self, index: int) -> torch.Tensor:
        if not self.is_finished(index):
            raise ValueError(f"chunk {index} of {self.path} is not finished")
        latents, problem = self._read_chunk(index)
        if latents is None:
            raise ValueError(f"job folder {self.path}: chunk file {self.chunk_path(index).name} {problem}; "
                             "it changed during the run; run again to sample it anew")
        return latents

    @property
    def complete(self) -> bool:
        return self.finished >= self.num_chunks


def remove_job(path: Union[str, Path]) -> None:
    """Delete a job folder's manifest, chunk latents and lock file, then the folder if that empties it.

    For automatic job folders that only served one run: once its video is written they are dead weight (a
    long 720p job holds gigabytes of latents). Files that are not the job's are left alone.
    """
    folder = Path(path)
    for name in (MANIFEST, LOCK_FILE):
        (folder / name).unlink(missing_ok=True)
    for pattern in ("chunk_*.safetensors", "carry_*.safetensors"):
        for chunk in folder.glob(pattern):
            chunk.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something else lives there
        folder.rmdir()
