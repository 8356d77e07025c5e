"""Where the embedded refiner's pose comes from: a landmark detector by name.

A detector maps low-resolution frames ``[F, 3, h, w]`` in [-1, 1] to the refiner's landmarks
(:data:`talkgen_core.synth.landmarks.LANDMARKS`, image-left first) at those frames' pixel positions ``[F, K, 2]``
(x, y; the centre of pixel ``(row, col)`` at ``(col, row)``); a landmark it cannot find is NaN (its heatmap is then
empty). Two detectors (:data:`DETECTORS`):

- ``net``: the embedded refiner's own landmark network, trained on the demo's synthetic faces; always there.
- ``mediapipe``: MediaPipe Face Mesh (468 points on real faces) through the legacy ``mediapipe.solutions.face_mesh``
  API, imported only when chosen. The 0.10.x wheels ship its model (``pip install "mediapipe<0.11"``); 1.x has no
  ``solutions`` and needs a downloaded model, so it is refused with that hint. Each frame is upscaled (bicubic,
  short side :data:`MEDIAPIPE_SIZE`) for the detector, which tracks through one call's frames; a frame without a
  face gives NaN landmarks.
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from talkgen_core.synth.landmarks import LANDMARKS

from .landmark_model import LandmarkNet, heatmap_peaks

Detector = Callable[[torch.Tensor], torch.Tensor]  # [F, 3, h, w] in [-1, 1] -> [F, K, 2]


def net_detector(net: LandmarkNet) -> Detector:
    """The landmark network's brightest heatmap pixel per landmark."""
    def detect(frames: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return heatmap_peaks(net(frames))

    return detect


MEDIAPIPE_INSTALL = 'pip install "mediapipe<0.11"'
MEDIAPIPE_SIZE = 256  # the short side frames are upscaled to for Face Mesh (they come at ~64 px)
# Face Mesh points averaged per landmark (eyes: the 16-point contour). MediaPipe's FACEMESH_RIGHT_EYE is the person's
# right eye, image left (its points have x < 0 in the canonical model, as mouth corner 61 has). Verified against
# google-ai-edge/mediapipe: solutions/face_mesh_connections.py, modules/face_geometry/data/face_model_with_iris.obj
FACE_MESH_POINTS: dict[str, tuple[int, ...]] = {
    "eye_left": (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246),
    "eye_right": (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466),
    "nose_tip": (1,),
    "mouth_left": (61,),
    "mouth_right": (291,),
    # the renderer's lip points are the middle of each lip: the mean of its outer (0, 17) and inner (13, 14) edges
    # (on the synthetic faces: 1.97 / 1.80 px mean error at 64 px, against 2.17 / 2.34 for the inner edge alone)
    "upper_lip": (0, 13),
    "lower_lip": (14, 17),
    "chin": (152,),  # lowest point of the face oval
}


def _face_mesh_module() -> ModuleType:
    """``mediapipe.solutions.face_mesh``, or an ImportError that names the install command."""
    try:
        import mediapipe
    except ImportError as error:
        raise ImportError(f"the mediapipe landmark detector needs mediapipe: {MEDIAPIPE_INSTALL}") from error
    face_mesh = getattr(getattr(mediapipe, "solutions", None), "face_mesh", None)
    if face_mesh is None:
        version = getattr(mediapipe, "__version__", "?")
        raise ImportError(f"mediapipe {version} has no solutions.face_mesh (1.x dropped it and ships no face "
                          f"mesh model): {MEDIAPIPE_INSTALL}")
    return face_mesh


def _detection_image(frame: torch.Tensor) -> np.ndarray:
    """One frame ``[3, h, w]`` in [-1, 1] -> RGB uint8 ``[H, W, 3]``, bicubic-upscaled to a short side of at least
    :data:`MEDIAPIPE_SIZE` (the image keeps the frame's extent, so normalised positions carry over)."""
    h, w = frame.shape[-2:]
    scale = max(1.0, MEDIAPIPE_SIZE / min(h, w))
    size = (round(h * scale), round(w * scale))
    big = F.interpolate(frame[None].float().cpu(), size=size, mode="bicubic", align_corners=False)[0]
    pixels = ((big.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)  # [3, H, W]
    return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())


def _mesh_landmarks(points: Sequence, height: int, width: int) -> torch.Tensor:
    """Face Mesh's normalised points (``.x``, ``.y`` in [0, 1] of the image) -> :data:`LANDMARKS` ``[K, 2]`` at
    the ``width x height`` frame's pixel centres."""
    mesh = torch.tensor([(p.x, p.y) for p in points], dtype=torch.float64)  # [N, 2]
    normalised = torch.stack([mesh[list(FACE_MESH_POINTS[name])].mean(dim=0) for name in LANDMARKS])  # [K, 2]
    return (normalised * torch.tensor([width, height], dtype=torch.float64) - 0.5).float()


def mediapipe_detector() -> Detector:
    """MediaPipe Face Mesh, one tracking session (``static_image_mode=False``, one face) per call; a frame where
    it finds no face gives NaN. Importing mediapipe happens here, so a missing package fails when chosen."""
    face_mesh = _face_mesh_module()

    def detect(frames: torch.Tensor) -> torch.Tensor:
        height, width = frames.shape[-2:]
        points = torch.full((frames.shape[0], len(LANDMARKS), 2), float("nan"))  # [F, K, 2]
        with face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1) as mesh:
            for i, frame in enumerate(frames):
                faces = mesh.process(_detection_image(frame)).multi_face_landmarks
                if faces:
                    points[i] = _mesh_landmarks(faces[0].landmark, height, width)
        return points.to(frames.device)

    return detect


DETECTORS: dict[str, str] = {
    "net": "the embedded refiner's landmark network (the demo's synthetic faces)",
    "mediapipe": f"MediaPipe Face Mesh on real faces (needs {MEDIAPIPE_INSTALL})",
}


def get_detector(name: str, net: LandmarkNet) -> Detector:
    """The detector called ``name`` (:data:`DETECTORS`); an unknown name lists the known ones."""
    if name == "net":
        return net_detector(net)
    if name == "mediapipe":
        return mediapipe_detector()
    raise ValueError(f"unknown landmark detector {name!r}; choose one of: {', '.join(DETECTORS)}")
