"""The one place the node layer touches ComfyUI's own services.

Every function imports ComfyUI lazily and degrades to a no-op (or a plain default) when the pack runs
outside the host, so node classes stay importable and testable without ComfyUI.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import torch


def _host_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def inside_comfyui() -> bool:
    return _host_module("comfy.model_management") is not None


class _CancelLatch:
    """A Cancel that ComfyUI's progress hook already consumed.

    The server's hook behind every ProgressBar update clears the interrupt flag and raises. Caught in
    ``Progress.set``, the Cancel is kept here instead, so the chunk loop stops at its next check with what it
    kept (and says so), and the node then raises ComfyUI's interrupt itself."""

    pending = False


class Progress:
    """Progress for one node run: ComfyUI's ProgressBar inside the host, nothing outside."""

    def __init__(self, total: int) -> None:
        utils = _host_module("comfy.utils")
        self.total = max(int(total), 1)
        self._bar = utils.ProgressBar(self.total) if utils is not None else None

    def set(self, value: int, preview_image: Any = None) -> None:
        if self._bar is None:
            return
        preview = ("JPEG", preview_image, 512) if preview_image is not None else None
        mm = _host_module("comfy.model_management")
        try:
            self._bar.update_absolute(min(int(value), self.total), self.total, preview)
        except Exception as exc:
            if mm is None or not isinstance(exc, mm.InterruptProcessingException):
                raise
            _CancelLatch.pending = True


def raise_if_cancelled() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed Cancel; no-op outside the host."""
    mm = _host_module("comfy.model_management")
    if mm is None:
        return
    if _CancelLatch.pending:
        _CancelLatch.pending = False
        raise mm.InterruptProcessingException()
    mm.throw_exception_if_processing_interrupted()


def cancel_requested() -> bool:
    """Whether the user pressed Cancel (read only: the flag stays set for ComfyUI's own check)."""
    mm = _host_module("comfy.model_management")
    return bool(mm is not None and (_CancelLatch.pending or mm.processing_interrupted()))


def load_vae_for_decode(vae: Any, latent_shape: tuple[int, ...]) -> None:
    """Put ComfyUI's VAE weights on its device with room to decode ``latent_shape``, as its own decode does."""
    mm = _host_module("comfy.model_management")
    if mm is None:
        return
    memory = vae.memory_used_decode(latent_shape, vae.vae_dtype)
    mm.load_models_gpu([vae.patcher], memory_required=memory, force_full_load=getattr(vae, "disable_offload", False))


def compute_device() -> torch.device:
    """The device ComfyUI computes on, or CUDA/CPU outside the host."""
    mm = _host_module("comfy.model_management")
    if mm is not None:
        return mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def output_device() -> torch.device:
    """Where node outputs should live (ComfyUI's intermediate device; CPU outside the host)."""
    mm = _host_module("comfy.model_management")
    return mm.intermediate_device() if mm is not None else torch.device("cpu")


def manage_model(module: torch.nn.Module) -> Any:
    """Wrap a model so ComfyUI's memory manager can load/offload it next to other nodes' models.

    Returns a ``CoreModelPatcher`` inside the host and the module itself outside.
    """
    patcher_mod = _host_module("comfy.model_patcher")
    mm = _host_module("comfy.model_management")
    if patcher_mod is None or mm is None:
        return module
    return patcher_mod.CoreModelPatcher(
        module, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )


def layer_operations() -> type | None:
    """ComfyUI's layer classes for a model it manages (``comfy.ops.manual_cast``: weights stay in their stored dtype
    and are cast per layer at call time, so its memory manager can load the model partially); None outside."""
    ops = _host_module("comfy.ops")
    return None if ops is None else ops.manual_cast


def load_native_models(models: list[Any], memory_required: int) -> None:
    """Let ComfyUI place native MODEL / MODEL_PATCH patchers for a run (whole or in part, evicting others)."""
    mm = _host_module("comfy.model_management")
    if mm is None:
        raise RuntimeError("ComfyUI's own MODEL runs only inside ComfyUI")
    mm.load_models_gpu(models, memory_required=memory_required)


def native_transformer_options(model: Any) -> dict:
    """A fresh copy of a native MODEL's transformer options with its wrappers and callbacks merged in: what
    ComfyUI's samplers hand the model on every call (its patches, block replacements and wrappers)."""
    extension = _host_module("comfy.patcher_extension")
    if extension is None:
        raise RuntimeError("ComfyUI's own MODEL runs only inside ComfyUI")
    options = extension.copy_nested_dicts(model.model_options.get("transformer_options", {}))
    extension.merge_nested_dicts(options.setdefault("wrappers", {}), model.wrappers, copy_dict1=False)
    extension.merge_nested_dicts(options.setdefault("callbacks", {}), model.callbacks, copy_dict1=False)
    return options


def load_to_compute_device(managed: Any, memory_required: int = 0) -> torch.nn.Module:
    """Ask ComfyUI to bring a managed model onto the GPU (evicting others as needed); return the module."""
    mm = _host_module("comfy.model_management")
    if mm is not None and hasattr(managed, "model"):
        mm.load_models_gpu([managed], memory_required=memory_required)
        return managed.model
    return managed.to(compute_device())


def model_folder(kind: str) -> list[Path]:
    """Folders ComfyUI searches for a model kind (e.g. ``diffusion_models``); empty outside the host."""
    folder_paths = _host_module("folder_paths")
    if folder_paths is None:
        return []
    try:
        return [Path(p) for p in folder_paths.get_folder_paths(kind)]
    except KeyError:
        return []


MODEL_FOLDERS = ("diffusion_models", "model_patches", "audio_encoders", "vae", "loras")


def register_model_folders(kinds: tuple[str, ...] = MODEL_FOLDERS) -> list[str]:
    """Register each model folder the loaders read that the host does not know yet (hosts older than the
    native InfiniteTalk support lack ``model_patches`` and ``audio_encoders``), so the loaders' lists,
    ``extra_model_paths.yaml`` and the frontend's model panel all name it. Returns the kinds added."""
    folder_paths = _host_module("folder_paths")
    if folder_paths is None:
        return []
    added = []
    for kind in kinds:
        if kind not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[kind] = (
                [str(Path(folder_paths.models_dir) / kind)], set(folder_paths.supported_pt_extensions))
            added.append(kind)
    return added


def model_files(kind: str) -> list[str]:
    """File names ComfyUI lists for a model kind (for COMBO inputs); empty outside the host."""
    folder_paths = _host_module("folder_paths")
    if folder_paths is None:
        return []
    try:
        return list(folder_paths.get_filename_list(kind))
    except KeyError:
        return []


def resolve_model_file(kind: str, name: str) -> Path:
    """Full path of a model file chosen in a COMBO; a clear error naming the folder when it is missing."""
    candidate = Path(name)
    if candidate.is_file():
        return candidate
    folder_paths = _host_module("folder_paths")
    if folder_paths is not None:
        full = folder_paths.get_full_path(kind, name)
        if full:
            return Path(full)
    folders = ", ".join(str(p) for p in model_folder(kind)) or f"ComfyUI/models/{kind}"
    raise FileNotFoundError(f"model file {name!r} not found: put it in {folders}")


def output_directory() -> Path:
    """ComfyUI's output folder, or ./output outside the host."""
    folder_paths = _host_module("folder_paths")
    if folder_paths is not None:
        return Path(folder_paths.get_output_directory())
    return Path("output").resolve()


def next_output_path(filename_prefix: str, extension: str) -> tuple[Path, dict[str, str]]:
    """A fresh numbered file in the output folder for ``filename_prefix`` (which may hold sub-folders),
    and the ``{filename, subfolder, type}`` record ComfyUI's UI shows it by."""
    root = output_directory()
    prefix = Path(filename_prefix.strip() or "TalkGen/video")
    folder = (root / prefix.parent).resolve()
    if root.resolve() not in (folder, *folder.parents):
        raise ValueError(f"filename_prefix {filename_prefix!r} points outside the output folder {root}")
    folder.mkdir(parents=True, exist_ok=True)
    taken = [p.stem[len(prefix.name) + 1 :] for p in folder.glob(f"{prefix.name}_*.{extension}")]
    counter = max([int(t) for t in taken if t.isdigit()], default=0) + 1
    path = folder / f"{prefix.name}_{counter:05d}.{extension}"
    subfolder = str(folder.relative_to(root.resolve())) if folder != root.resolve() else ""
    return path, {"filename": path.name, "subfolder": subfolder, "type": "output"}


def input_directory() -> Path | None:
    """ComfyUI's input folder (where LoadImage / LoadAudio look); None outside the host."""
    folder_paths = _host_module("folder_paths")
    return Path(folder_paths.get_input_directory()) if folder_paths is not None else None


def temp_directory() -> Path:
    folder_paths = _host_module("folder_paths")
    if folder_paths is not None:
        return Path(folder_paths.get_temp_directory())
    return Path("output", "temp").resolve()


def video_from_file(path: Path) -> Any:
    """ComfyUI's VIDEO object for a file (so native Save/Preview nodes work); the path outside the host."""
    api = _host_module("comfy_api.latest")
    if api is not None:
        return api.InputImpl.VideoFromFile(str(path))
    return str(path)
