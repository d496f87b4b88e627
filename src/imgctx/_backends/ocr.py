"""``rapidocr``: an annotator that reads the text in an image with RapidOCR on ONNX Runtime
(package ``rapidocr_onnxruntime``, whose PP-OCRv4 detection and recognition weights ship in the
wheel; nothing is downloaded).

Most photos hold no text, so reading costs two passes only where text is likely: first the
text detector runs on the already decoded small image (its long side at most ``probe_side``
pixels, some tens of milliseconds); only when it finds at least ``min_boxes`` text boxes is the
file decoded again at up to ``read_side`` pixels and the full detection + recognition run on it.
Lines read with a confidence below ``min_score``, and lines with fewer than two letters or
digits (a lone "®" read in a pattern), are dropped; the rest are joined in reading order (top to
bottom, then left to right).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field

from imgctx._backends.base import load_upright
from imgctx._errors import MissingDependencyError
from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, plugin_config
from imgctx._types import Annotation


class OcrSettings(PluginSettings):
    """Settings of the ``rapidocr`` annotator (``IMGCTX_OCR_*``)."""

    model_config = plugin_config("ocr")

    probe_side: int = Field(320, ge=64, le=2048, description="Long side (pixels) of the quick text-detection pass that decides whether to read an image.")
    read_side: int = Field(960, ge=256, le=4096, description="Long side (pixels) an image with likely text is decoded to for reading.")
    min_boxes: int = Field(1, ge=1, description="Read an image only when the quick pass finds at least this many text boxes.")
    min_score: float = Field(0.6, ge=0.0, le=1.0, description="Drop lines read with a lower recognition confidence.")
    threads: int = Field(0, ge=0, description="ONNX Runtime threads per model (0: its default, all cores).")


def _bgr(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def read_order(lines: Sequence[tuple[Any, str, float]]) -> list[str]:
    """Texts of (box, text, score) lines, top to bottom, then left to right."""
    def key(line: tuple[Any, str, float]) -> tuple[float, float]:
        box = np.asarray(line[0], dtype=np.float32)
        height = max(1.0, float(box[:, 1].max() - box[:, 1].min()))
        return (round(float(box[:, 1].min()) / height), float(box[:, 0].min()))

    return [text for _, text, _ in sorted(lines, key=key)]


class RapidOcr:
    """Text in images; loads the ONNX models on first use."""

    name = "rapidocr"
    device = "cpu"

    def __init__(self, probe_side: int = 320, read_side: int = 960, min_boxes: int = 1,
                 min_score: float = 0.6, threads: int = 0) -> None:
        self.probe_side = probe_side
        self.read_side = read_side
        self.min_boxes = min_boxes
        self.min_score = min_score
        self.threads = threads
        self._engine: Any = None
        self._preprocess: Any = None
        self._lock = threading.Lock()
        self.load_time: float | None = None
        #: Per-call counters for benchmarks: images probed, images read, seconds in each pass.
        self.stats = {"probed": 0, "read": 0, "probe_seconds": 0.0, "read_seconds": 0.0}

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def load(self) -> None:
        with self._lock:
            if self._engine is not None:
                return
            try:
                from rapidocr_onnxruntime import RapidOCR
                from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess
            except ImportError:
                raise MissingDependencyError("text reading (OCR)", "offline") from None
            start = time.perf_counter()
            # "max": the detector never scales an image up (its default, "min" 736, upscales
            # every image so its short side is 736 px: two to four times the work).
            kwargs: dict[str, Any] = {"det_limit_type": "max"}
            if self.threads:
                kwargs["intra_op_num_threads"] = self.threads
            with contextlib.redirect_stdout(io.StringIO()):
                engine = RapidOCR(**kwargs)
            det = engine.text_det
            self._preprocess = DetPreProcess(self.probe_side, "max", det.mean, det.std)
            self._engine = engine
            self.load_time = time.perf_counter() - start

    def text_likely(self, image: Image.Image) -> bool:
        """The quick pass: does the detector find text boxes in the small decoded image?"""
        det = self._engine.text_det
        bgr = _bgr(image)
        batch = self._preprocess(bgr)
        if batch is None:
            return False
        boxes, _ = det.postprocess_op(det.infer(batch)[0], bgr.shape[:2])
        return len(boxes) >= self.min_boxes

    def read(self, path: str, fallback: Image.Image) -> str:
        """The text of the image file at ``path`` (``fallback``, the decoded image, if the file
        cannot be decoded again)."""
        image = load_upright(path, self.read_side, fallback)
        result, _ = self._engine(_bgr(image), use_cls=False)
        lines = [(box, str(text), float(score)) for box, text, score in (result or [])
                 if float(score) >= self.min_score and sum(ch.isalnum() for ch in str(text)) >= 2]
        return "\n".join(t.strip() for t in read_order(lines) if t.strip())

    def annotate(self, images: Sequence[Image.Image], paths: Sequence[str]) -> list[Annotation]:
        self.load()
        out = []
        for image, path in zip(images, paths, strict=True):
            t0 = time.perf_counter()
            likely = self.text_likely(image)
            t1 = time.perf_counter()
            self.stats["probed"] += 1
            self.stats["probe_seconds"] += t1 - t0
            text = ""
            if likely:
                text = self.read(path, image)
                self.stats["read"] += 1
                self.stats["read_seconds"] += time.perf_counter() - t1
            out.append(Annotation(text=text))
        return out


def ocr_factory(settings: Settings) -> RapidOcr:
    own = settings.plugin(OcrSettings)
    return RapidOcr(own.probe_side, own.read_side, own.min_boxes, own.min_score, own.threads)


@hookimpl
def register_annotators(register: Any) -> None:
    register("rapidocr", ocr_factory, settings=OcrSettings)
