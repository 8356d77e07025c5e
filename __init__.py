"""ComfyUI entry point of the TalkGen node pack.

ComfyUI imports this folder by file path as a package (relative imports work, absolute imports of the
folder's own name do not). The bundled library ``talkgen_core`` is imported absolutely everywhere, so the
folder is put on ``sys.path`` once here; nothing else happens at import time.
"""

import os
import sys

_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
if _PACK_DIR not in sys.path:
    sys.path.insert(0, _PACK_DIR)

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
