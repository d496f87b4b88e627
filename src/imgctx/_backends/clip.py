"""CLIP image/text embedders and the ``clip-zero-shot`` tagger.

- ``open-clip``: an open_clip model, ``ViT-B-32`` with the ``laion2b_s34b_b79k`` weights by
  default (the best Flickr30k and MSCOCO text-to-image recall among open_clip's ViT-B/32-cost
  models; see docs/models.md). Cross-modal: text queries are embedded into the image space.
- ``clip``: a transformers ``CLIPModel`` (``openai/clip-vit-base-patch32`` by default, or the
  folder in ``LOCAL_CLIP_MODEL_PATH``, the service contract's layout).
- ``clip-zero-shot`` (tagger): the ``open-clip`` model itself, scoring each image against the
  shipped vocabulary (``data/clip_vocabulary.txt``). It shares the image embedder's instance, so
  ingest runs the vision tower once per batch (``analyze``).

Zero-shot calibration: each noun's prompt ``"a photo of a <noun>."`` is embedded once (cached on
the model). An image's cosine to every prompt is multiplied by the model's own learned logit
scale (100 for the released CLIP weights) and soft-maxed over the whole vocabulary, which is how
CLIP was trained to compare one image with many texts. A noun is a tag when its probability is
at least ``IMGCTX_TAG_THRESHOLD``; a coarse parent (``animal``) scores the summed probability of its
nouns among the 10 most likely. With 375 nouns, chance is 0.27%, so the default threshold of 0.1 is 37 times chance.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from imgctx._backends.base import LazyModel, TagSettings, resolve_device
from imgctx._backends.hub import HubSettings, is_folder, load_error, short, use_local_files
from imgctx._backends.onnx_runtime import (
    OnnxTower,
    Towers,
    TowerSpec,
    choose_runtime,
    method_module,
    start_onnx,
)
from imgctx._backends.torch_common import TorchSettings, l2_normalise, prepare_torch
from imgctx._backends.vocabulary import load_vocabulary
from imgctx._errors import ConfigurationError, MissingDependencyError
from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, contract_name, plugin_config
from imgctx._types import Tag

log = logging.getLogger(__name__)

DEFAULT_OPEN_CLIP_MODEL = "ViT-B-32"
DEFAULT_OPEN_CLIP_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_HF_CLIP_MODEL = "openai/clip-vit-base-patch32"
#: Text-to-image cosines of CLIP ViT-B/32 models sit around 0.10-0.20 for unrelated pairs and
#: 0.25-0.35 for matching ones; this range is mapped linearly onto [0, 1] (see docs/models.md).
DEFAULT_TEXT_SCORE_RANGE = (0.15, 0.35)
#: A coarse parent sums the probabilities of its nouns among this many most likely nouns.
GROUP_TOP_K = 10
#: Below-threshold nouns kept as candidates for the text vector (never ``objects``).
CANDIDATES = 5
LOCAL_CLIP_SETTING = "IMGCTX_LOCAL_CLIP_MODEL_PATH"


def _prompt(noun: str) -> str:
    article = "an" if noun[:1] in "aeiou" else "a"
    return f"a photo of {article} {noun}."


class ClipBackend(LazyModel):
    """What both CLIP backends share: zero-shot tags from image vectors, batching, caching."""

    cross_modal = True
    dim = 512
    input_size = 224

    def __init__(self, device: str = "cpu", threshold: float = 0.1, max_tags: int = 5,
                 torch_threads: int | None = None,
                 text_score_range: tuple[float, float] = DEFAULT_TEXT_SCORE_RANGE,
                 cache_dir: str | os.PathLike[str] | None = None, runtime: str = "auto", int8: bool = False) -> None:
        super().__init__(device)
        self.cache_dir = cache_dir
        self.runtime_setting = runtime
        self.int8 = int8
        #: ``torch`` or ``onnx`` once loaded (see ``IMGCTX_CLIP_RUNTIME``).
        self.runtime = "torch"
        self._onnx: dict[str, OnnxTower] | None = None
        self._towers: Towers | None = None
        self.threshold = threshold
        self.max_tags = max_tags
        self.torch_threads = torch_threads
        self.text_score_range = (float(text_score_range[0]), float(text_score_range[1]))
        self.logit_scale = 100.0
        self._torch: Any = None
        self._vocab = load_vocabulary()
        self._prompts: np.ndarray | None = None
        self._prompt_lock = threading.Lock()
        labels = list(dict.fromkeys([e.noun for e in self._vocab] + [p for e in self._vocab for p in e.parents]))
        col = {label: j for j, label in enumerate(labels)}
        groups = np.zeros((len(self._vocab), len(labels)), dtype=np.float32)
        for i, e in enumerate(self._vocab):
            groups[i, col[e.noun]] = 1.0
            for p in e.parents:
                groups[i, col[p]] = 1.0
        parents = {p for e in self._vocab for p in e.parents}
        self._labels = labels
        self._groups = groups
        self._group_size = groups.sum(axis=0)
        self._is_parent = np.array([label in parents for label in labels])

    # -- subclasses fill these -------------------------------------------------------------------

    def _image_features(self, images: Sequence[Any]) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _text_features(self, texts: Sequence[str]) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # -- ONNX Runtime ----------------------------------------------------------------------------

    def _onnx_towers(self) -> Towers | None:  # pragma: no cover - overridden where supported
        return None

    def _start_runtime(self) -> None:
        """After the torch model is loaded: switch to ONNX Runtime when the setting says so."""
        device = resolve_device(self.device_setting)
        if choose_runtime(self.runtime_setting, device, True, self.name) == "torch":
            return  # torch asked for, or 'auto' off the CPU: no weights to hash
        towers = self._onnx_towers()
        if towers is None:
            if self.runtime_setting == "onnx":
                raise ConfigurationError(f"runtime 'onnx' is not available for {self.name}; use 'torch' or 'auto'")
            return
        self._onnx = start_onnx(self.runtime_setting, device, towers)
        if self._onnx is None:
            self._towers = towers
        else:
            self.runtime = "onnx"

    def export_onnx(self) -> dict[str, Path]:
        """Export the towers into the model cache now (where not yet done); their paths. The
        running model keeps its runtime; the next load with runtime ``auto`` uses the exports."""
        self.load()
        if self._onnx is not None:
            return {name: tower.path for name, tower in self._onnx.items()}
        if self._towers is None:
            self._towers = self._onnx_towers()
        if self._towers is None:
            raise ConfigurationError(f"{self.name} cannot be exported to ONNX")
        return self._towers.export()

    # -- roles -----------------------------------------------------------------------------------

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        with self._torch.inference_mode():
            feats = l2_normalise(self._torch, self._image_features(images))
        return feats.cpu().numpy().astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        with self._torch.inference_mode():
            feats = l2_normalise(self._torch, self._text_features(list(texts)))
        return feats.cpu().numpy().astype(np.float32)

    def analyze(self, images: Sequence[Any]) -> tuple[list[list[Tag]], np.ndarray]:
        vectors = self.embed_images(images)
        return self.tags_from_vectors(vectors), vectors

    def tag(self, images: Sequence[Any]) -> list[list[Tag]]:
        return self.tags_from_vectors(self.embed_images(images))

    # -- zero-shot -------------------------------------------------------------------------------

    def prompt_vectors(self) -> np.ndarray:
        """The vocabulary's prompt embeddings, computed once per model and kept (in memory, and
        in ``cache_dir`` when set: embedding 375 prompts takes CLIP's text tower a while on CPU)."""
        if self._prompts is None:
            with self._prompt_lock:
                if self._prompts is None:
                    self._prompts = self._cached_prompts()
        return self._prompts

    def _embed_chunked(self, texts: list[str], chunk: int = 64) -> np.ndarray:
        return np.concatenate([self.embed_texts(texts[i:i + chunk]) for i in range(0, len(texts), chunk)])

    def _cached_prompts(self) -> np.ndarray:
        prompts = [_prompt(e.noun) for e in self._vocab]
        if self.cache_dir is None:
            return self._embed_chunked(prompts)
        # The key covers the model's name, the prompts and the first prompt's vector, so other
        # weights under the same name (a re-trained folder) never reuse stale vectors.
        probe = np.round(self.embed_texts(prompts[:1])[0], 3).astype(np.float32)
        key = hashlib.sha256("\n".join([self.name, *prompts]).encode() + probe.tobytes()).hexdigest()[:24]
        path = Path(self.cache_dir).expanduser() / "zero-shot-prompts" / f"{key}.npy"
        try:
            cached = np.load(path)
            if cached.shape == (len(prompts), self.dim):
                return cached.astype(np.float32)
        except (OSError, ValueError):
            pass
        vectors = self._embed_chunked(prompts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, vectors)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only home is no reason to fail
            log.warning("cannot cache zero-shot prompt vectors in %s: %s", path.parent, exc)
        return vectors

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n images, n nouns): softmax over the vocabulary of ``logit_scale`` x cosine."""
        logits = self.logit_scale * (vectors @ self.prompt_vectors().T)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def tags_from_vectors(self, vectors: np.ndarray) -> list[list[Tag]]:
        """Per image: labels whose (group) probability is at least the threshold, leaves before
        their groups (``cat`` before ``pet`` before ``animal``), at most ``IMGCTX_TAG_LIMIT`` nouns that
        head no group; then, marked ``confident=False``, the next most likely nouns."""
        if len(vectors) == 0:
            return []
        probs = self.probabilities(vectors)
        out: list[list[Tag]] = []
        for p in probs:
            # Groups sum only the most likely nouns, so a spread-out, uncertain distribution
            # (every animal at 0.3%) never adds up to a false "animal".
            top = np.argsort(-p)[:GROUP_TOP_K]
            s = p[top] @ self._groups[top]
            keep = [j for j in np.flatnonzero(s >= self.threshold)]
            leaves = sorted((j for j in keep if not self._is_parent[j]), key=lambda j: -s[j])[: self.max_tags]
            groups = [j for j in keep if self._is_parent[j]]
            chosen = leaves + sorted(groups, key=lambda j: (self._group_size[j], -s[j]))
            tags = [Tag(self._labels[j], float(min(1.0, s[j])), coarse=bool(self._is_parent[j])) for j in chosen]
            known = {t.label for t in tags}
            for i in np.argsort(-p):
                if len(tags) - len(chosen) >= CANDIDATES:
                    break
                noun = self._vocab[i].noun
                if noun not in known:
                    known.add(noun)
                    tags.append(Tag(noun, float(p[i]), confident=False))
            out.append(tags)
        return out


class OpenClipModel(ClipBackend):
    """An open_clip model: a built-in architecture name with a pretrained tag or checkpoint
    file, ``hf-hub:org/repo``, or a folder holding ``open_clip_config.json`` and weights."""

    def __init__(self, model: str = DEFAULT_OPEN_CLIP_MODEL, pretrained: str | None = DEFAULT_OPEN_CLIP_PRETRAINED,
                 local_files_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = str(model)
        self.pretrained = pretrained
        self.local_files_only = local_files_only
        if is_folder(self.source) or self.source.startswith(("local-dir:", "hf-hub:")):
            self.name = f"open-clip:{short(self.source.removeprefix('local-dir:'))}"
        else:
            self.name = f"open-clip:{self.source}/{pretrained}"
        self._model: Any = None
        self._preprocess: Any = None
        self._tokenizer: Any = None

    def _checkpoint(self, open_clip: Any) -> tuple[str, str | None]:
        """(model name for open_clip, checkpoint file or None), downloading nothing when
        ``local_files_only``."""
        from huggingface_hub import hf_hub_download, snapshot_download

        src = self.source
        if src.startswith("local-dir:"):
            return src, None
        if is_folder(src):
            return f"local-dir:{Path(src).expanduser()}", None
        if src.startswith("hf-hub:"):
            folder = snapshot_download(src.removeprefix("hf-hub:"),
                                       local_files_only=use_local_files(self.local_files_only),
                                       allow_patterns=["*.json", "*.txt", "*.bin", "*.safetensors"])
            return f"local-dir:{folder}", None
        if not self.pretrained:
            raise ValueError("no pretrained weights named (clip_pretrained is empty)")
        if Path(self.pretrained).expanduser().is_file():
            return src, str(Path(self.pretrained).expanduser())
        cfg = open_clip.get_pretrained_cfg(src, self.pretrained)
        if not cfg:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(src)) or "none"
            raise ValueError(f"open_clip has no pretrained tag {self.pretrained!r} for {src!r} (known: {tags})")
        hub = cfg.get("hf_hub", "")
        if not hub:  # only a URL: let open_clip fetch it into its own cache
            return src, None
        repo, filename = hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        offline = use_local_files(self.local_files_only)
        last: Exception | None = None
        for name in names:
            try:
                return src, hf_hub_download(repo, name, local_files_only=offline)
            except LocalEntryNotFoundError as exc:
                # Not cached, and the hub is unreachable (or off limits): the next file name
                # is only looked for in the cache, so an unreachable hub is waited for once.
                last, offline = last or exc, True
            except EntryNotFoundError as exc:  # the hub has no such file: try the next name
                last = exc
        assert last is not None
        raise last

    def _load(self) -> None:
        try:
            import open_clip
        except ImportError:
            raise MissingDependencyError("the open-clip embedder", "standard") from None
        torch, device, dtype = prepare_torch(self.device_setting, self.torch_threads)
        try:
            name, checkpoint = self._checkpoint(open_clip)
            pretrained = checkpoint if checkpoint else (None if name.startswith("local-dir:") else self.pretrained)
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=device,
                precision="fp16" if dtype == torch.float16 else "fp32",
            )
            tokenizer = open_clip.get_tokenizer(name)
        except Exception as exc:  # open_clip raises RuntimeError/FileNotFoundError/hub errors
            raise load_error("the open_clip model", self.source, LOCAL_CLIP_SETTING, exc,
                             self.local_files_only) from None
        self._model, self._preprocess, self._tokenizer = model.eval(), preprocess, tokenizer
        self._torch = torch
        self._device, self._dtype = device, dtype
        size = getattr(model.visual, "image_size", self.input_size)
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.dim = int(getattr(model.visual, "output_dim", 0) or self._text_features(["a"]).shape[-1])
        self.logit_scale = float(model.logit_scale.exp().item())
        self._start_runtime()
        if self._onnx is not None:  # the towers run in ONNX Runtime: free the torch weights
            self._model = None

    def _onnx_towers(self) -> Towers | None:
        torch, model = self._torch, self._model
        size = self.input_size
        image = TowerSpec(method_module(model, "encode_image"), [torch.randn(2, 3, size, size)], ["pixels"], int8=self.int8)
        text = TowerSpec(method_module(model, "encode_text"), [self._tokenizer(["a photo of a cat.", "a dog"])], ["tokens"])
        return Towers("open-clip", self.name, model, {"image": image, "text": text}, self.cache_dir, self.torch_threads)

    def _image_features(self, images: Sequence[Any]) -> Any:
        batch = self._torch.stack([self._preprocess(im) for im in images])
        if self._onnx is not None:
            return self._torch.from_numpy(self._onnx["image"](batch.numpy()))
        return self._model.encode_image(batch.to(self._device, self._dtype))

    def _text_features(self, texts: Sequence[str]) -> Any:
        tokens = self._tokenizer(list(texts))
        if self._onnx is not None:
            return self._torch.from_numpy(self._onnx["text"](tokens.numpy()))
        with self._torch.inference_mode():
            return self._model.encode_text(tokens.to(self._device))


class HfClipModel(ClipBackend):
    """A transformers ``CLIPModel`` + ``CLIPProcessor`` from a hub id or a folder."""

    def __init__(self, model: str = DEFAULT_HF_CLIP_MODEL, local_files_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = str(model)
        self.name = f"clip:{short(self.source)}"
        self.local_files_only = local_files_only or is_folder(self.source)
        self._model: Any = None
        self._processor: Any = None

    def _load(self) -> None:
        try:
            from transformers import CLIPModel, CLIPProcessor
        except ImportError:
            raise MissingDependencyError("the clip embedder", "standard") from None
        torch, device, dtype = prepare_torch(self.device_setting, self.torch_threads)
        try:
            local = use_local_files(self.local_files_only)
            processor = CLIPProcessor.from_pretrained(self.source, local_files_only=local)
            model = CLIPModel.from_pretrained(self.source, local_files_only=local)
        except Exception as exc:  # transformers raises OSError, ValueError, hub errors...
            raise load_error("the CLIP model", self.source, LOCAL_CLIP_SETTING, exc, self.local_files_only) from None
        self._model = model.eval().to(device=device, dtype=dtype)
        self._processor, self._torch = processor, torch
        self._device, self._dtype = device, dtype
        config: Any = model.config
        self.dim = int(config.projection_dim)
        self.input_size = int(config.vision_config.image_size)
        self.logit_scale = float(model.logit_scale.exp().item())
        self._start_runtime()

    def _onnx_towers(self) -> Towers | None:
        """The image tower only: text queries are few and short, and stay in torch."""
        side = self.input_size
        spec = TowerSpec(method_module(self._model, "get_image_features", pick=self._pooled),
                         [self._torch.randn(2, 3, side, side)], ["pixels"], int8=self.int8)
        return Towers("hf-clip", self.name, self._model, {"image": spec}, self.cache_dir, self.torch_threads)

    @staticmethod
    def _pooled(out: Any) -> Any:
        """transformers 5 returns a model output (projected ``pooler_output``), 4.x a tensor."""
        return out.pooler_output if hasattr(out, "pooler_output") else out

    def _image_features(self, images: Sequence[Any]) -> Any:
        pixels = self._processor(images=list(images), return_tensors="pt")["pixel_values"]
        if self._onnx is not None:
            return self._torch.from_numpy(self._onnx["image"](pixels.numpy()))
        return self._pooled(self._model.get_image_features(pixel_values=pixels.to(self._device, self._dtype)))

    def _text_features(self, texts: Sequence[str]) -> Any:
        tok = self._processor.tokenizer(list(texts), padding=True, truncation=True, max_length=77, return_tensors="pt")
        tok = {k: v.to(self._device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
        return self._pooled(self._model.get_text_features(**tok))


class ClipSettings(PluginSettings):
    """Settings of the ``open-clip`` and ``clip`` embedders and taggers (``IMGCTX_CLIP_*``)."""

    model_config = plugin_config("clip")

    model: str = Field(
        "ViT-B-32",
        description="open_clip model: an architecture name, hf-hub:org/repo, or a folder (local_model_path wins).",
    )
    pretrained: str = Field(
        "laion2b_s34b_b79k", description="open_clip pretrained tag (or checkpoint file) for the model.",
    )
    hf_model: str = Field(
        "openai/clip-vit-base-patch32",
        description="transformers CLIP model of the `clip` embedder: a hub id or a folder.",
    )
    local_model_path: Path | None = Field(
        None, validation_alias=contract_name("CLIP_LOCAL_MODEL_PATH", "IMGCTX_LOCAL_CLIP_MODEL_PATH",
                                             "LOCAL_CLIP_MODEL_PATH"),
        description="Folder of a CLIP model, open_clip or transformers layout (also LOCAL_CLIP_MODEL_PATH).",
    )
    score_range: Annotated[tuple[float, float], NoDecode] = Field(
        (0.15, 0.35),
        description="CLIP text-to-image cosines mapped linearly onto [0, 1] for search scores (low, high).",
    )
    runtime: Literal["torch", "onnx", "auto"] = Field(
        "auto",
        description="open_clip runtime: torch; onnx (exported into cache_dir on first use); auto: ONNX on CPU "
                    "once exported (imgctx models export), torch otherwise.",
    )
    int8: bool = Field(
        False, description="ONNX runtime: dynamic int8 quantisation of the image tower (faster, less faithful).",
    )

    @field_validator("score_range", mode="before")
    @classmethod
    def _parse_range(cls, value: object) -> object:
        """From the environment: ``0.15,0.35`` or JSON ``[0.15, 0.35]``."""
        if isinstance(value, str):
            return tuple(float(v) for v in value.strip().strip("[]()").split(",") if v.strip())
        return value

    @field_validator("score_range")
    @classmethod
    def _check_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not -1.0 <= low < high <= 1.0:
            raise ValueError("score_range needs -1 <= low < high <= 1")
        return value


def _common(settings: Settings) -> dict[str, Any]:
    tags = settings.plugin(TagSettings)
    return dict(
        device=settings.device, threshold=tags.threshold, max_tags=tags.limit,
        torch_threads=settings.plugin(TorchSettings).threads,
        text_score_range=tuple(settings.plugin(ClipSettings).score_range),
        local_files_only=settings.plugin(HubSettings).local_files_only, cache_dir=settings.cache_dir,
        runtime=settings.plugin(ClipSettings).runtime, int8=settings.plugin(ClipSettings).int8,
    )


def open_clip_factory(settings: Settings) -> ClipBackend:
    """open_clip by default. ``local_model_path`` wins: a folder with ``open_clip_config.json``
    loads with open_clip, one with a transformers ``config.json`` (the service contract's layout)
    with transformers."""
    own = settings.plugin(ClipSettings)
    kwargs = _common(settings)
    if own.local_model_path is not None:
        folder = Path(own.local_model_path).expanduser()
        if not (folder / "open_clip_config.json").is_file() and (folder / "config.json").is_file():
            return HfClipModel(model=str(folder), **kwargs)
        return OpenClipModel(model=str(folder), pretrained=None, **kwargs)
    return OpenClipModel(model=own.model, pretrained=own.pretrained, **kwargs)


def hf_clip_factory(settings: Settings) -> HfClipModel:
    own = settings.plugin(ClipSettings)
    return HfClipModel(model=str(own.local_model_path or own.hf_model), **_common(settings))


@hookimpl
def register_image_embedders(register: Any) -> None:
    register("open-clip", open_clip_factory, shared=True, settings=(ClipSettings, TagSettings, HubSettings, TorchSettings))
    register("clip", hf_clip_factory, shared=True, settings=(ClipSettings, TagSettings, HubSettings, TorchSettings))


@hookimpl
def register_taggers(register: Any) -> None:
    register("clip-zero-shot", open_clip_factory, shared=True, settings=(ClipSettings, TagSettings, HubSettings, TorchSettings))
    register("clip", hf_clip_factory, shared=True, settings=(ClipSettings, TagSettings, HubSettings, TorchSettings))
