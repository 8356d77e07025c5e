"""The optional packages the encoders need, asked for by name when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'talkgen[encoders]' (or: pip install transformers sentencepiece)"


class EncoderPackageMissing(ImportError):
    """transformers or sentencepiece is not installed; the message says how to install them."""


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` for ``what``, or raise :class:`EncoderPackageMissing` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EncoderPackageMissing(f"{what} needs the {module} package, which is not installed: {INSTALL_HINT}") \
            from exc
