"""ComfyUI entry point of the TalkGen node pack.

ComfyUI imports this folder by file path as a package (relative imports work, absolute imports of the
folder's own name do not). The bundled library ``talkgen_core`` is imported absolutely everywhere, so the
folder is put on ``sys.path`` once here. Missing packages from ``requirements.txt`` are logged at import
time with the install command; if one of them stops the nodes from importing, the pack registers no nodes
instead of raising, so ComfyUI's start-up and the other packs are unaffected. Inside ComfyUI the example
inputs are put into its input folder (see ``nodes/example_inputs.py``).
"""

import logging
import os
import sys
from pathlib import Path

_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
if _PACK_DIR not in sys.path:
    sys.path.insert(0, _PACK_DIR)

from talkgen_core.requirements import install_hint, warn_missing_requirements  # noqa: E402

_log = logging.getLogger("TalkGen")
_REQUIREMENTS = Path(_PACK_DIR) / "requirements.txt"
_MISSING = warn_missing_requirements(_REQUIREMENTS, _log)

try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
except ImportError as exc:
    if not _MISSING:
        raise
    _log.error("TalkGen: no nodes registered (%s); run %s and restart ComfyUI", exc, install_hint(_REQUIREMENTS))
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}
else:
    from .nodes.example_inputs import install_example_inputs
    from .nodes.host import register_model_folders

    register_model_folders()
    install_example_inputs()  # the shipped workflows name them: the demo runs on the first Run

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
