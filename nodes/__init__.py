"""TalkGen's ComfyUI nodes: one registry of node classes; ids are ``TalkGen`` + the class's NODE_NAME."""

from __future__ import annotations

from . import conditioning, loaders, refiner, sampler, speech, video

NODE_CLASSES: list[type] = [*loaders.NODES, *speech.NODES, *conditioning.NODES, *sampler.NODES, *refiner.NODES,
                             *video.NODES]

NODE_CLASS_MAPPINGS = {f"TalkGen{cls.NODE_NAME}": cls for cls in NODE_CLASSES}
NODE_DISPLAY_NAME_MAPPINGS = {f"TalkGen{cls.NODE_NAME}": cls.DISPLAY_NAME for cls in NODE_CLASSES}
