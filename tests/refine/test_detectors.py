"""Landmark detectors by name: the MediaPipe Face Mesh mapping (through a fake mediapipe), its missing-package error,
the landmark network, and a real MediaPipe run where one is installed."""

from __future__ import annotations

import math
import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import torch

from talkgen_core.refine.detectors import DETECTORS, MEDIAPIPE_INSTALL, MEDIAPIPE_SIZE, get_detector
from talkgen_core.refine.landmark_model import LandmarkNet, heatmap_peaks
from talkgen_core.synth.landmarks import LANDMARKS

# MediaPipe's own eye contours (face_mesh_connections.py): "RIGHT" is the person's right eye, on the image left
PERSON_RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
PERSON_LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
# where the fake face puts each LANDMARKS entry, normalised (x, y); the eyes are circles of points around these
FAKE_FACE = ((0.30, 0.40), (0.70, 0.40), (0.50, 0.55), (0.35, 0.70), (0.65, 0.70), (0.50, 0.66), (0.50, 0.74),
             (0.50, 0.95))


def _fake_mesh_points() -> list[SimpleNamespace]:
    """468 normalised points: every unused one at a decoy position, the mapped ones at :data:`FAKE_FACE`."""
    xy = [(0.9, 0.1)] * 468
    for eye, (cx, cy) in ((PERSON_RIGHT_EYE, FAKE_FACE[0]), (PERSON_LEFT_EYE, FAKE_FACE[1])):
        for k, index in enumerate(eye):  # a circle: its mean is the centre
            angle = 2.0 * math.pi * k / len(eye)
            xy[index] = (cx + 0.05 * math.cos(angle), cy + 0.03 * math.sin(angle))
    for index, position in zip((1, 61, 291, 152), FAKE_FACE[2:5] + FAKE_FACE[7:]):
        xy[index] = position
    for pair, (x, y) in (((0, 13), FAKE_FACE[5]), ((14, 17), FAKE_FACE[6])):  # each lip: outer and inner edge
        xy[pair[0]], xy[pair[1]] = (x, y - 0.01), (x, y + 0.01)
    return [SimpleNamespace(x=x, y=y, z=0.0) for x, y in xy]


class FakeFaceMesh:
    """``solutions.face_mesh.FaceMesh``: finds the fake face in any image that is not all black."""

    made: list["FakeFaceMesh"] = []

    def __init__(self, **options) -> None:
        self.options, self.images, self.open = options, [], False
        FakeFaceMesh.made.append(self)

    def __enter__(self) -> "FakeFaceMesh":
        self.open = True
        return self

    def __exit__(self, *exc) -> None:
        self.open = False

    def process(self, image: np.ndarray) -> SimpleNamespace:
        assert self.open
        self.images.append(image)
        faces = [SimpleNamespace(landmark=_fake_mesh_points())] if image.max() > 0 else None
        return SimpleNamespace(multi_face_landmarks=faces)


@pytest.fixture
def fake_mediapipe(monkeypatch: pytest.MonkeyPatch) -> type[FakeFaceMesh]:
    module = ModuleType("mediapipe")
    module.solutions = SimpleNamespace(face_mesh=SimpleNamespace(FaceMesh=FakeFaceMesh))
    monkeypatch.setitem(sys.modules, "mediapipe", module)
    monkeypatch.setattr(FakeFaceMesh, "made", [])
    return FakeFaceMesh


def test_mediapipe_maps_face_mesh_points_to_image_left_first_pixel_centres(fake_mediapipe):
    height, width = 48, 64
    frames = torch.full((3, 3, height, width), -1.0)
    frames[0, 0] = 1.0  # red
    frames[2] = 0.5
    points = get_detector("mediapipe", LandmarkNet(width=8))(frames)
    normalised = torch.tensor(FAKE_FACE, dtype=torch.float64)
    expected = (normalised * torch.tensor([width, height], dtype=torch.float64) - 0.5).float()
    assert points.shape == (3, len(LANDMARKS), 2) and points.dtype == torch.float32
    torch.testing.assert_close(points[0], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(points[2], expected, atol=1e-4, rtol=0)
    assert torch.isnan(points[1]).all()  # the black frame has no face
    assert points[0, LANDMARKS.index("eye_left"), 0] < points[0, LANDMARKS.index("eye_right"), 0]

    (mesh,) = fake_mediapipe.made  # one tracking session for the call, closed afterwards
    assert mesh.options == {"static_image_mode": False, "max_num_faces": 1} and not mesh.open
    image = mesh.images[0]
    assert image.dtype == np.uint8 and image.shape == (MEDIAPIPE_SIZE, round(MEDIAPIPE_SIZE * width / height), 3)
    assert (image[..., 0] == 255).all() and (image[..., 1:] == 0).all()  # RGB order, [-1, 1] -> [0, 255]


def test_mediapipe_opens_one_face_mesh_per_call(fake_mediapipe):
    detect = get_detector("mediapipe", LandmarkNet(width=8))
    detect(torch.zeros(2, 3, 64, 64))
    detect(torch.zeros(1, 3, 64, 64))
    assert [len(mesh.images) for mesh in fake_mediapipe.made] == [2, 1]


def test_a_missing_or_too_new_mediapipe_names_the_install_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe raises ImportError
    with pytest.raises(ImportError, match='pip install "mediapipe<0.11"'):
        get_detector("mediapipe", LandmarkNet(width=8))
    tasks_only = ModuleType("mediapipe")  # 1.x: no solutions
    tasks_only.__version__ = "1.0.0"
    monkeypatch.setitem(sys.modules, "mediapipe", tasks_only)
    with pytest.raises(ImportError, match=r"1\.0\.0 has no solutions\.face_mesh.*mediapipe<0\.11"):
        get_detector("mediapipe", LandmarkNet(width=8))
    assert MEDIAPIPE_INSTALL in DETECTORS["mediapipe"]


def test_net_needs_no_mediapipe_and_an_unknown_name_lists_the_choices(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    torch.manual_seed(0)
    net = LandmarkNet(width=8)
    frames = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(get_detector("net", net)(frames), heatmap_peaks(net(frames)))
    assert list(DETECTORS) == ["net", "mediapipe"]
    with pytest.raises(ValueError, match="unknown landmark detector 'dlib'; choose one of: net, mediapipe"):
        get_detector("dlib", net)


def _real_face_mesh_available() -> bool:
    try:
        import mediapipe
    except ImportError:
        return False
    return getattr(getattr(mediapipe, "solutions", None), "face_mesh", None) is not None


@pytest.mark.slow
@pytest.mark.skipif(not _real_face_mesh_available(), reason=f"needs mediapipe with solutions.face_mesh "
                                                            f"({MEDIAPIPE_INSTALL})")
def test_real_mediapipe_runs_on_synthetic_faces():
    """The cartoon faces may well not be found (NaN); whatever is found lies in the frame, image-left first."""
    from talkgen_core.synth import sample_identity
    from talkgen_core.synth.render import render_reference

    frames = torch.stack([render_reference(sample_identity(seed), 64).float() / 127.5 - 1.0 for seed in (1, 2)])
    points = get_detector("mediapipe", LandmarkNet(width=8))(frames)
    assert points.shape == (2, len(LANDMARKS), 2)
    for frame in points:
        assert torch.isnan(frame).all() or (torch.isfinite(frame).all() and frame.min() > -1 and frame.max() < 64)
        if torch.isfinite(frame).all():
            assert frame[LANDMARKS.index("eye_left"), 0] < frame[LANDMARKS.index("eye_right"), 0]
