"""Full-length audio arrays on disk instead of in RAM: ``SpillRows``, rows appended in order, read by range.

An hour of speech is ~220 MiB per 16 kHz mono copy and ~3.2 GiB of chinese-wav2vec2-base features
[T, 12, 768]; holding them would grow the audio phase's memory with the audio length. Rows go to an
unnamed temp file (``tempfile.TemporaryFile``: an unpredictable name, created exclusively, unlinked at once,
so it vanishes with the object or the process, even after a crash) and come back with ``pread``. Neither
maps the file, so the process holds only the rows it works on; the kernel's page cache holds the rest and
may drop it to disk under pressure. The files go to ``tempfile.gettempdir()`` (``TMPDIR``); where that is a
RAM-backed tmpfs, point ``TMPDIR`` at a disk folder.

A ``SpillRows`` answers what the audio code asks of a tensor: ``shape``, ``ndim``, ``dtype``, ``device`` and
``x[a:b]`` (a CPU tensor of those rows), so the encoder's slices and the sampler's per-chunk windows read it
as they read a tensor.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch

READ_BLOCK_BYTES = 1 << 22  # rows are hashed or copied 4 MiB at a time


class SpillRows:
    """Rows ``[N, *row_shape]`` of one dtype in an unnamed temp file (``folder``: where; None: the system's)."""

    device = torch.device("cpu")

    def __init__(self, row_shape: Sequence[int] = (), dtype: torch.dtype = torch.float32,
                 folder: Optional[Union[str, os.PathLike]] = None) -> None:
        self.row_shape = tuple(int(n) for n in row_shape)
        self.dtype = dtype
        self._np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        self._row_bytes = self._np_dtype.itemsize * math.prod(self.row_shape)
        self._file = tempfile.TemporaryFile(dir=folder, buffering=0)
        self._rows = 0

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self._rows, *self.row_shape))

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    def __len__(self) -> int:
        return self._rows

    def append(self, rows: Union[torch.Tensor, np.ndarray]) -> None:
        """Write ``rows`` [n, *row_shape] after the last row."""
        block = torch.as_tensor(rows).detach().to("cpu", self.dtype).contiguous()
        if tuple(block.shape[1:]) != self.row_shape:
            raise ValueError(f"rows must be [n, {', '.join(map(str, self.row_shape))}], got {tuple(block.shape)}")
        data = memoryview(block.numpy()).cast("B")
        offset = self._rows * self._row_bytes
        while data:
            written = os.pwrite(self._file.fileno(), data, offset)
            data, offset = data[written:], offset + written
        self._rows += int(block.shape[0])

    def __getitem__(self, key: slice) -> torch.Tensor:
        """Rows ``key`` (a slice with step 1) as a new CPU tensor ``[n, *row_shape]``."""
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"SpillRows reads contiguous row ranges (x[a:b]), not {key!r}")
        start, stop, _ = key.indices(self._rows)
        out = np.empty((max(0, stop - start), *self.row_shape), dtype=self._np_dtype)
        view, offset = memoryview(out).cast("B"), start * self._row_bytes
        while view:
            got = os.preadv(self._file.fileno(), [view], offset)
            if got == 0:
                raise OSError(f"spill file ended {len(view)} bytes early")
            view, offset = view[got:], offset + got
        return torch.from_numpy(out)

    def blocks(self) -> Iterator[torch.Tensor]:
        """All rows in order, a few MiB at a time."""
        step = max(1, READ_BLOCK_BYTES // max(1, self._row_bytes))
        for start in range(0, self._rows, step):
            yield self[start:start + step]


class SpilledStack:
    """Several equal-shaped ``SpillRows`` standing for their stack ``[P, N, *row]``: iterated per part, hashed
    as the stacked tensor would be (``hash_into``, used by ``jobdir.hash_inputs``)."""

    def __init__(self, parts: Sequence[SpillRows]) -> None:
        if not parts or len({p.shape for p in parts}) != 1:
            raise ValueError("a SpilledStack needs one or more parts of one shape")
        self.parts = list(parts)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.parts), *self.parts[0].shape))

    def __iter__(self) -> Iterator[SpillRows]:
        return iter(self.parts)

    def hash_into(self, digest: Any) -> None:
        """Feed ``digest`` the bytes ``hash_inputs`` hashes for the stacked tensor, read block by block, so a
        job's key does not depend on whether its audio was spilled."""
        digest.update(f"tensor:{tuple(self.shape)}:{self.parts[0].dtype}:".encode())
        for part in self.parts:
            for block in part.blocks():
                digest.update(memoryview(block.numpy()).cast("B"))


class SpilledSamples:
    """Audio ``[C, S]`` kept on disk as interleaved rows (``SpillRows`` [S, C], or [S] for mono), as it is
    decoded and as the mp4 writer spills it; ``x[:, a:b]`` reads samples a..b as a tensor [C, b - a]."""

    def __init__(self, rows: SpillRows) -> None:
        if rows.ndim not in (1, 2):
            raise ValueError(f"audio rows must be [S] or [S, C], got {tuple(rows.shape)}")
        self.rows = rows

    @property
    def shape(self) -> torch.Size:
        channels = self.rows.row_shape[0] if self.rows.row_shape else 1
        return torch.Size((channels, len(self.rows)))

    @property
    def ndim(self) -> int:
        return 2

    def __getitem__(self, key: tuple[slice, slice]) -> torch.Tensor:
        channels, samples = key
        if channels != slice(None):
            raise TypeError(f"SpilledSamples reads every channel (x[:, a:b]), not {key!r}")
        block = self.rows[samples]
        return block.reshape(block.shape[0], -1).T

    def blocks(self) -> Iterator[torch.Tensor]:
        """The samples in order as [C, n] blocks of a few MiB."""
        for block in self.rows.blocks():
            yield block.reshape(block.shape[0], -1).T
