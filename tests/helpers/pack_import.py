"""Import the repository the way ComfyUI imports a custom-node folder: by file path, as a package whose
module name is the folder's full path with "." replaced by "_x_", from a folder named ComfyUI-TalkGen."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]


def import_pack_like_comfyui(custom_nodes_dir: Path, folder_name: str = "ComfyUI-TalkGen") -> ModuleType:
    link = custom_nodes_dir / folder_name
    if not link.exists():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    module_name = str(link).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(
        module_name, link / "__init__.py", submodule_search_locations=[str(link)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
