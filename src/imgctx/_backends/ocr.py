"""``rapidocr``: an annotator that reads the text in an image with RapidOCR on ONNX Runtime
(package ``rapidocr_onnxruntime``, whose PP-OCRv4 detection and recognition weights ship in the
wheel; nothing is downloaded).

Most photos hold no text, so reading costs two passes only where text is likely: first the
text detector runs on the already decoded small image (its long side at most ``probe_side``
pixels, some milliseconds); only when it finds at least ``min_boxes`` text boxes is the file
decoded again at up to ``read_side`` pixels and read: the text detector runs again on a copy
reduced to ``det_side`` pixels (finding lines needs less resolution than reading them; this
halves the detection's cost), and the recogniser reads each line cut from the ``read_side``
image. Lines less than ``min_line_height`` pixels high there are too small to read and are
skipped, and at most ``max_lines`` lines (the tallest) are read per image, which bounds the cost
of a dense page. Lines read with a confidence below ``min_score``, and lines with fewer than two
letters or digits (a lone "®" read in a pattern), are dropped; the rest are joined in reading
order (top to bottom, then left to right).
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
    det_side: int = Field(640, ge=128, le=4096, description="Long side (pixels) the text lines are found at when reading (at most read_side); the lines are then read from the read_side image.")
    min_line_height: int = Field(8, ge=1, description="Skip text lines less high than this (pixels, in the read_side image): too small to read.")
    max_lines: int = Field(60, ge=1, description="Read at most this many text lines per image (the tallest).")
    min_boxes: int = Field(1, ge=1, description="Read an image only when the quick pass finds at least this many text boxes.")
    min_score: float = Field(0.6, ge=0.0, le=1.0, description="Drop lines read with a lower recognition confidence.")
    threads: int = Field(0, ge=0, description="ONNX Runtime threads per model (0: its default, all cores).")


def _bgr(image: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def _box_height(box: Any) -> float:
    """A text box's height: the longer of its two sides that run across the line."""
    b = np.asarray(box, dtype=np.float32)
    return float(max(np.linalg.norm(b[0] - b[3]), np.linalg.norm(b[1] - b[2])))


def read_order(lines: Sequence[tuple[Any, str, float]]) -> list[str]:
    """Texts of (box, text, score) lines, top to bottom, then left to right: lines whose
    vertical centres lie within half a (median) line height of a row's first line share its
    row. The unit is one height for the whole image, so that lines of slightly different
    heights cannot swap rows."""
    if not lines:
        return []
    boxes = [np.asarray(line[0], dtype=np.float32) for line in lines]
    tops, bottoms = [float(b[:, 1].min()) for b in boxes], [float(b[:, 1].max()) for b in boxes]
    unit = max(1.0, float(np.median([b - t for t, b in zip(tops, bottoms, strict=True)])))
    centres = [(t + b) / 2 for t, b in zip(tops, bottoms, strict=True)]
    rows: list[list[int]] = []
    for i in sorted(range(len(lines)), key=lambda i: centres[i]):
        if rows and centres[i] - centres[rows[-1][0]] < unit / 2:
            rows[-1].append(i)
        else:
            rows.append([i])
    return [lines[i][1] for row in rows for i in sorted(row, key=lambda i: float(boxes[i][:, 0].min()))]


class RapidOcr:
    """Text in images; loads the ONNX models on first use."""

    name = "rapidocr"
    device = "cpu"

    def __init__(self, probe_side: int = 320, read_side: int = 960, min_boxes: int = 1,
                 min_score: float = 0.6, threads: int = 0, det_side: int = 640,
                 min_line_height: int = 8, max_lines: int = 60) -> None:
        self.probe_side = probe_side
        self.read_side = read_side
        self.det_side = min(det_side, read_side)
        self.min_line_height = min_line_height
        self.max_lines = max_lines
        self.min_boxes = min_boxes
        self.min_score = min_score
        self.threads = threads
        self._engine: Any = None
        self._preprocess: Any = None
        self._read_preprocess: Any = None
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
            self._read_preprocess = DetPreProcess(self.det_side, "max", det.mean, det.std)
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
        bgr = _bgr(image)
        h, w = bgr.shape[:2]
        if min(h, w) <= 30 or w / h > 8:  # a sliver: RapidOCR's own pass pads it first
            result, _ = self._engine(bgr, use_cls=False)
            found = [(box, str(text), float(score)) for box, text, score in (result or [])]
        else:
            found = self.read_lines(bgr)
        lines = [(box, text, score) for box, text, score in found
                 if score >= self.min_score and sum(ch.isalnum() for ch in text) >= 2]
        return "\n".join(t.strip() for t in read_order(lines) if t.strip())

    def find_lines(self, bgr: np.ndarray) -> list[np.ndarray]:
        """The text lines' boxes (4 corners, in ``bgr``'s pixels) found on a copy reduced to
        ``det_side``: the tallest ``max_lines`` of those at least ``min_line_height`` high."""
        det = self._engine.text_det
        batch = self._read_preprocess(bgr)
        if batch is None:
            return []
        boxes, _ = det.postprocess_op(det.infer(batch)[0], bgr.shape[:2])
        if len(boxes) == 0:
            return []
        boxes = det.filter_tag_det_res(boxes, bgr.shape[:2])
        heights = [_box_height(b) for b in boxes]
        keep = [i for i, hgt in enumerate(heights) if hgt >= self.min_line_height]
        keep = sorted(keep, key=lambda i: -heights[i])[:self.max_lines]
        return [boxes[i] for i in sorted(keep)]

    def read_lines(self, bgr: np.ndarray) -> list[tuple[Any, str, float]]:
        """(box, text, confidence) of each line found in ``bgr``, read from ``bgr`` itself."""
        engine = self._engine
        boxes = self.find_lines(bgr)
        if not boxes:
            return []
        boxes = engine.sorted_boxes(np.asarray(boxes))
        texts, _ = engine.text_rec(engine.get_crop_img_list(bgr, boxes))
        return [(box, str(got[0]), float(got[1])) for box, got in zip(boxes, texts, strict=True)]

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
    return RapidOcr(own.probe_side, own.read_side, own.min_boxes, own.min_score, own.threads,
                    own.det_side, own.min_line_height, own.max_lines)


@hookimpl
def register_annotators(register: Any) -> None:
    register("rapidocr", ocr_factory, settings=OcrSettings)
