"""Block swap: the last N transformer blocks live in CPU memory and are copied to the device just ahead of use.

A 14B DiT (about 38 GB in bf16) does not fit a 24 GB card; its 40 blocks are nearly all of it. With
``offload_blocks=N`` the last N blocks keep their weights in (pinned, on CUDA) host memory. Before block i runs
its weights are swapped in from a device copy, and the copy of the next offloaded block is started on a side
stream, so the transfer overlaps block i's compute; after block i its device copy is dropped. At most two
offloaded blocks are on the device at a time (the running one and the next), and after the last block the
first offloaded one is fetched for the next forward (the next step or guidance pass).

The weights are copied, never converted: a swapped block computes with bit-identical weights, so the output
equals a resident model's exactly. On a CPU-only run the same mechanism runs with a synchronous copy on the
CPU (the device copy is a separate CPU tensor), which is what the tests check.

Apply it to a finished model (after loading, LoRA, dtype conversion). A model loaded on the CPU is placed here:
resident parts on ``device``, offloaded blocks in host memory, so the whole model is never on the device at
once; on exit every tensor goes back where it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

TensorSlot = tuple[nn.Module, str, bool]  # (module, attribute name, is a parameter)


def _own_slots(module: nn.Module) -> list[TensorSlot]:
    """The parameters and (non-None) buffers held by ``module`` itself, as (module, name, is_parameter)."""
    return [(module, name, True) for name, p in module._parameters.items() if p is not None] + \
        [(module, name, False) for name, b in module._buffers.items() if b is not None]


def _slots(block: nn.Module) -> list[TensorSlot]:
    """Every parameter and buffer of ``block`` and its submodules."""
    return [slot for module in block.modules() for slot in _own_slots(module)]


def _get(slot: TensorSlot) -> torch.Tensor:
    module, name, is_param = slot
    return (module._parameters if is_param else module._buffers)[name]


def _set(slot: TensorSlot, value: torch.Tensor) -> None:
    module, name, is_param = slot
    if is_param:
        module._parameters[name].data = value  # type: ignore[union-attr]
    else:
        module._buffers[name] = value


@dataclass
class _Staged:
    tensors: list[torch.Tensor]
    ready: torch.cuda.Event | None


@dataclass
class BlockSwap:
    """The swap state of one model; made by :func:`block_swap`. ``offloaded`` are block indices."""

    blocks: nn.ModuleList
    offloaded: tuple[int, ...]
    device: torch.device
    host: dict[int, list[torch.Tensor]] = field(default_factory=dict)  # block -> host copies, in slot order
    slots: dict[int, list[TensorSlot]] = field(default_factory=dict)
    origins: dict[int, list[torch.device]] = field(default_factory=dict)  # block -> where each tensor was
    staged: dict[int, _Staged] = field(default_factory=dict)
    copies: int = 0  # blocks copied to the device so far (for tests and benchmarks)

    def __post_init__(self) -> None:
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None

    def offload(self) -> None:
        """Move the offloaded blocks' tensors into host memory (pinned on CUDA)."""
        for index in self.offloaded:
            slots = _slots(self.blocks[index])
            self.origins[index] = [_get(slot).device for slot in slots]
            host = []
            for slot in slots:
                tensor = _get(slot).detach().to("cpu")
                host.append(tensor.pin_memory() if self.cuda else tensor)
            self.slots[index], self.host[index] = slots, host
            for slot, tensor in zip(slots, host):
                _set(slot, tensor)

    def fetch(self, index: int) -> None:
        """Start copying block ``index`` to the device (on the side stream on CUDA)."""
        if index in self.staged:
            return
        stream = torch.cuda.stream(self.stream) if self.stream is not None else _no_stream()
        with stream:
            tensors = [torch.empty_like(h, device=self.device).copy_(h, non_blocking=True) for h in self.host[index]]
            ready = None
            if self.stream is not None:
                ready = torch.cuda.Event()
                ready.record(self.stream)
        self.staged[index] = _Staged(tensors, ready)
        self.copies += 1

    def next_offloaded(self, index: int) -> int:
        """The offloaded block that runs after block ``index`` (wrapping to the next forward's first)."""
        later = [i for i in self.offloaded if i > index]
        return later[0] if later else self.offloaded[0]

    def before_block(self, index: int) -> None:
        if index in self.host:
            self.fetch(index)
            staged = self.staged[index]
            if staged.ready is not None:
                current = torch.cuda.current_stream(self.device)
                current.wait_event(staged.ready)
                for tensor in staged.tensors:
                    tensor.record_stream(current)  # the allocator must not reuse it before the compute is done
            for slot, tensor in zip(self.slots[index], staged.tensors):
                _set(slot, tensor)
        following = self.next_offloaded(index)
        if following != index:
            self.fetch(following)

    def after_block(self, index: int) -> None:
        if index not in self.host:
            return
        for slot, tensor in zip(self.slots[index], self.host[index]):
            _set(slot, tensor)
        del self.staged[index]

    def restore(self) -> None:
        """Put the offloaded blocks' tensors back where they were before :meth:`offload`."""
        self.staged.clear()
        for index in self.offloaded:
            for slot, tensor, origin in zip(self.slots[index], self.host[index], self.origins[index]):
                _set(slot, tensor.to(origin))
        self.host.clear()


@contextmanager
def _no_stream() -> Iterator[None]:
    yield


def offloaded_indices(num_blocks: int, offload: int) -> tuple[int, ...]:
    """The last ``offload`` of ``num_blocks`` block indices; errors name the option and the valid range."""
    if isinstance(offload, bool) or not isinstance(offload, int) or not 0 <= offload <= num_blocks:
        raise ValueError(f"offload_blocks must be a whole number from 0 to {num_blocks} (the model's blocks), "
                         f"got {offload!r}")
    return tuple(range(num_blocks - offload, num_blocks))


def _move_resident(model: nn.Module, offloaded: list[nn.Module],
                   device: torch.device) -> list[tuple[TensorSlot, torch.device]]:
    """Move every tensor of ``model`` outside the ``offloaded`` blocks to ``device`` (one module at a time);
    returns each moved tensor's slot and former device."""
    skip = {id(m) for block in offloaded for m in block.modules()}
    moved = []
    for module in model.modules():
        if id(module) in skip:
            continue
        for slot in _own_slots(module):
            tensor = _get(slot)
            if tensor.device != device:
                moved.append((slot, tensor.device))
                _set(slot, tensor.detach().to(device))
    return moved


@contextmanager
def block_swap(model: nn.Module, offload: int, device: torch.device | str) -> Iterator[BlockSwap | None]:
    """Run ``model`` (anything with ``blocks``, an ``nn.ModuleList``) with its last ``offload`` blocks swapped.

    Resident parts are moved to ``device`` for the block; on exit every tensor goes back where it was.
    ``offload=0`` does nothing and yields None.
    """
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        if offload:
            raise ValueError("offload_blocks needs a model with transformer blocks (the pack's own DiT); this "
                             "model has none, so leave offload_blocks at 0 and let its host manage its memory")
        yield None
        return
    indices = offloaded_indices(len(blocks), offload)
    if not indices:
        yield None
        return
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    swap = BlockSwap(blocks, indices, device)
    swap.offload()
    moved = _move_resident(model, [blocks[i] for i in indices], device)
    handles = []
    for index, block in enumerate(blocks):
        handles.append(block.register_forward_pre_hook(lambda _m, _a, i=index: swap.before_block(i)))
        handles.append(block.register_forward_hook(lambda _m, _a, _o, i=index: swap.after_block(i)))
    try:
        yield swap
    finally:
        for handle in handles:
            handle.remove()
        swap.restore()
        for slot, origin in moved:  # the model ends where it started (a CPU-loaded model back in CPU memory)
            _set(slot, _get(slot).detach().to(origin))
