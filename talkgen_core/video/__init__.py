"""Video I/O: the streaming mp4 writer with audio mux (``writer``), lazy time-based reading (``reader``),
frame layout conversions and in-memory videos (``frames``), and saving finished videos (``save``).

Submodules are imported on use; ``import talkgen_core.video`` itself loads nothing heavy.
"""
