"""``opencv-people``: an annotator that says whether people are in an image and how many, with
the detectors bundled in OpenCV's wheel (``opencv-python``): the Haar cascade for frontal faces
(``alt2``, and, with ``profiles``, the one for faces in profile), and the HOG + linear SVM
pedestrian detector for whole bodies.

Both run on a grey copy of the picture the pipeline already decoded, its long side reduced to
``side`` pixels; the file is decoded again (at reduced scale) only when that picture is much
smaller than ``side`` (a square photo decoded for a 224-pixel model), so the detectors never see
less than ``REUSE_AT`` of the resolution asked for.

It counts; it never identifies anyone. The count is the larger of faces and bodies found (the
two usually see the same people). Tags: ``face`` when a face is seen, ``person`` for one or
more people, ``people`` for two or more. Detectors this small miss people seen from behind,
far away or partly, and now and then take a pattern for a face: ``min_neighbors`` trades one
against the other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field

from imgctx._backends.base import load_upright
from imgctx._errors import MissingDependencyError, ModelLoadError
from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, plugin_config
from imgctx._types import Annotation, Tag

FRONTAL, PROFILE = "haarcascade_frontalface_alt2.xml", "haarcascade_profileface.xml"
#: The decoded picture is used when its long side is at least this share of ``side``.
REUSE_AT = 0.85


class PeopleSettings(PluginSettings):
    """Settings of the ``opencv-people`` annotator (``IMGCTX_PEOPLE_*``)."""

    model_config = plugin_config("people")

    side: int = Field(320, ge=128, le=2048, description="Long side (pixels) of the grey picture the detectors look at (the decoded picture reduced to it; the file is decoded again only when that picture is much smaller).")
    min_neighbors: int = Field(3, ge=1, description="Face detections that must overlap to count as a face (higher: fewer false faces).")
    scale_factor: float = Field(1.25, ge=1.05, le=2.0, description="Step between the face sizes searched (lower: finds more faces between the steps, slower).")
    bodies: bool = Field(True, description="Also look for whole bodies (HOG pedestrian detector), not only faces.")
    profiles: bool = Field(False, description="Also look for faces in profile (a second cascade: about twice the cost).")


def tags_for(faces: int, count: int) -> tuple[Tag, ...]:
    tags = []
    if count >= 1:
        tags.append(Tag("person", 1.0, coarse=True))
    if count >= 2:
        tags.append(Tag("people", 1.0, coarse=True))
    if faces:
        tags.append(Tag("face", 1.0, coarse=True))
    return tuple(tags)


class OpenCvPeople:
    """People and faces per image; loads OpenCV's bundled detectors on first use."""

    name = "opencv-people"
    device = "cpu"

    def __init__(self, side: int = 320, min_neighbors: int = 3, bodies: bool = True,
                 profiles: bool = False, scale_factor: float = 1.25) -> None:
        self.side = side
        self.min_neighbors = min_neighbors
        self.scale_factor = scale_factor
        self.bodies = bodies
        self.profiles = profiles
        self._cv2: Any = None
        self._cascades: list[Any] = []
        self._hog: Any = None
        self._lock = threading.Lock()
        self.load_time: float | None = None

    @property
    def loaded(self) -> bool:
        return self._cv2 is not None

    def load(self) -> None:
        with self._lock:
            if self._cv2 is not None:
                return
            try:
                import cv2
            except ImportError:
                raise MissingDependencyError("people detection", "offline") from None
            start = time.perf_counter()
            folder = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".")
            for name in (FRONTAL, PROFILE) if self.profiles else (FRONTAL,):
                cascade = cv2.CascadeClassifier(str(folder / name))
                if cascade.empty():
                    raise ModelLoadError(f"OpenCV's {name} is missing from {folder}; install opencv-python>=4.8,<5")
                self._cascades.append(cascade)
            if self.bodies:
                self._hog = cv2.HOGDescriptor()
                self._hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())
            self._cv2 = cv2
            self.load_time = time.perf_counter() - start

    def count(self, image: Image.Image) -> tuple[int, int]:
        """(faces, people) in one image."""
        cv2 = self._cv2
        img = image.convert("L")  # grey first: the resize then works on one channel
        scale = self.side / max(img.size)
        if scale < 1:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
        grey = cv2.equalizeHist(np.asarray(img))
        min_face = max(24, min(grey.shape) // 12)  # 24: the cascades' own window
        faces = 0
        for i, cascade in enumerate(self._cascades):
            found = cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                             minSize=(min_face, min_face))
            if i == 0 or not faces:  # profile faces only where no frontal face was seen
                faces = max(faces, len(found))
        bodies = 0
        if self._hog is not None and min(grey.shape) >= 128:
            rects, weights = self._hog.detectMultiScale(grey, winStride=(8, 8), padding=(8, 8), scale=1.2)
            bodies = int(sum(1 for w in np.ravel(weights) if w > 0.8))
        return faces, max(faces, bodies)

    def picture(self, image: Image.Image | None, path: str) -> Image.Image:
        """What the detectors look at: the decoded picture when it is large enough (``count``
        reduces it to ``side``), else the file decoded again at ``side``."""
        if image is not None and max(image.size) >= REUSE_AT * self.side:
            return image
        return load_upright(path, self.side, image)

    def annotate(self, images: Sequence[Image.Image], paths: Sequence[str]) -> list[Annotation]:
        self.load()
        out = []
        for image, path in zip(images, paths, strict=True):
            faces, people = self.count(self.picture(image, path))
            out.append(Annotation(people=people, tags=tags_for(faces, people)))
        return out


def people_factory(settings: Settings) -> OpenCvPeople:
    own = settings.plugin(PeopleSettings)
    return OpenCvPeople(own.side, own.min_neighbors, own.bodies, own.profiles, own.scale_factor)


@hookimpl
def register_annotators(register: Any) -> None:
    register("opencv-people", people_factory, settings=PeopleSettings)
