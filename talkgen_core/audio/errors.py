"""The one exception type the audio pipeline raises for inputs it cannot use."""

from __future__ import annotations


class AudioInputError(ValueError):
    """An audio input that cannot be used; the message names the input and how to fix it.

    Subclasses ``ValueError`` so callers that already catch bad values keep working.
    """
