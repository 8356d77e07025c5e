"""talkgen core: audio-driven talking video of any length, as a library.

This package never imports ComfyUI; the node layer in ``nodes/`` adapts it to the host.
"""

__version__ = "0.1.0"
