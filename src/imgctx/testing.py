"""Helpers for testing code that uses imgctx, without downloads or real weights.

- ``tiny`` preset models: deterministic, weight-free stand-ins that run in microseconds.
  ``TinyImageEmbedder`` (colour histogram), ``TinyTextEmbedder`` (hashed words),
  ``TinyColorTagger`` (colour names). They fill the same roles as real models, so an
  ``Extractor(preset="tiny", store="memory")`` exercises the whole library.
  They are a plugin only where a test asks for them: ``settings_for_tests()`` loads this module
  as a plugin (``load_plugins``), as does ``IMGCTX_LOAD_PLUGINS=imgctx.testing``; a user's
  registry never holds them.
- ``write_sample_photos(folder)``: real photos from scikit-image (if installed) as JPEG/PNG.
- ``StoreConformance``: the pytest suite every store passes; subclass it to test a store plugin
  (imported on first use, since it needs pytest).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgctx import Preset, Tag, hookimpl
from imgctx._testkit import PLUGIN, SAMPLE_PHOTOS, sample_photo_path, settings_for_tests, write_sample_photos

# (StoreConformance, make_item and CONFORMANCE_SPACES load on first use: see __getattr__)
__all__ = [
    "PLUGIN", "SAMPLE_PHOTOS", "TINY_PRESET", "TinyColorTagger", "TinyImageEmbedder", "TinyTextEmbedder",
    "build_tiny_blip", "build_tiny_clip", "build_tiny_git", "build_tiny_open_clip", "build_tiny_sentence_transformer",
    "sample_photo_path", "settings_for_tests", "write_sample_photos",
]

_WORD = re.compile(r"[a-z0-9]+")


class _Tiny:
    loaded = True
    load_time = 0.0
    device = "cpu"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0

    def load(self) -> None:
        return None

    def _tick(self) -> None:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)


class TinyImageEmbedder(_Tiny):
    """64-d L2-normalised colour histogram (4 levels per channel); not cross-modal."""

    name = "tiny-image"
    dim = 64
    cross_modal = False

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        self._tick()
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        for k, img in enumerate(images):
            arr = np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.uint8) // 64
            codes = (arr[..., 0].astype(np.int64) * 16 + arr[..., 1] * 4 + arr[..., 2]).ravel()
            hist = np.bincount(codes, minlength=self.dim).astype(np.float32)
            out[k] = hist / max(float(np.linalg.norm(hist)), 1e-12)
        return out


class TinyTextEmbedder(_Tiny):
    """128-d L2-normalised bag of hashed words: texts sharing words are similar."""

    name = "tiny-text"
    dim = 128

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self._tick()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for k, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[k, h % self.dim] += 1.0
            norm = float(np.linalg.norm(out[k]))
            if norm:
                out[k] /= norm
        return out


class TinyColorTagger(_Tiny):
    """Tags each image with its dominant colour channel and brightness."""

    name = "tiny-colors"

    def tag(self, images: Sequence[Any]) -> list[list[Tag]]:
        self._tick()
        result = []
        for img in images:
            mean = np.asarray(img.convert("RGB").resize((16, 16)), dtype=np.float32).mean(axis=(0, 1)) / 255
            colour = ("red", "green", "blue")[int(np.argmax(mean))]
            share = float(mean.max() / max(mean.sum(), 1e-6))
            light = "bright" if mean.mean() > 0.5 else "dark"
            result.append([Tag(colour, min(1.0, share)), Tag(light, float(abs(mean.mean() - 0.5) * 2)), Tag("colour", 1.0, coarse=True)])
        return result


TINY_PRESET = Preset(
    name="tiny",
    description=(
        "Deterministic stand-in models from imgctx.testing (colour-histogram image vectors, "
        "hashed-word text vectors, colour tags); for tests and demos, not for real search."
    ),
    captioner="tags-caption",
    image_embedder="tiny-image",
    text_embedder="tiny-text",
    taggers=("tiny-colors",),
)


@hookimpl
def register_presets(register: Any) -> None:
    register(TINY_PRESET)


@hookimpl
def register_image_embedders(register: Any) -> None:
    register("tiny-image", lambda settings, **kw: TinyImageEmbedder(**kw))


@hookimpl
def register_text_embedders(register: Any) -> None:
    register("tiny-text", lambda settings, **kw: TinyTextEmbedder(**kw))


@hookimpl
def register_taggers(register: Any) -> None:
    register("tiny-colors", lambda settings, **kw: TinyColorTagger(**kw))


# -- tiny real-architecture models on disk (standard preset tests) ---------------------------------
#
# These build BLIP, CLIP (transformers and open_clip) and sentence-transformers models with the
# real classes, random weights and a few thousand parameters, and save them to a folder in the
# same layout as the published weights. Loading them goes through the same ``from_pretrained`` /
# ``create_model_and_transforms`` / ``SentenceTransformer`` code path as real weights, so a test
# exercises everything but the quality of the output. torch, transformers, open_clip and
# sentence-transformers are imported inside the functions (the ``standard`` extra).

_SPECIAL_WORDPIECE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
_CAPTION_WORDS = (
    "a an the of in on with and at photo picture image sitting standing cup plate table man woman "
    "cat dog rocket astronaut coffee motorcycle galaxy space sky red blue green black white"
).split()


def _wordpiece_vocab() -> dict[str, int]:
    """A small lower-case WordPiece vocabulary: specials, letters (whole and ``##``), words."""
    from imgctx._backends.vocabulary import load_vocabulary

    words: list[str] = list(_SPECIAL_WORDPIECE)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,-'")
    words += letters + [f"##{c}" for c in letters]
    for text in [*_CAPTION_WORDS, *(e.noun for e in load_vocabulary())]:
        words += text.split()
    return {w: i for i, w in enumerate(dict.fromkeys(words))}


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def build_tiny_blip(folder: str | Path, seed: int = 0) -> Path:
    """A tiny BLIP captioning model (``BlipForConditionalGeneration`` + ``BlipProcessor`` with a
    BERT WordPiece tokenizer and 32x32 input) saved with ``save_pretrained``; returns the folder."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder = Path(folder)
    vocab = _wordpiece_vocab()
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, projection_dim=32),
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, encoder_hidden_size=32, max_position_embeddings=64,
                         bos_token_id=vocab["[DEC]"], sep_token_id=vocab["[SEP]"], pad_token_id=vocab["[PAD]"],
                         eos_token_id=vocab["[SEP]"]),
        projection_dim=32,
    )
    _seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    BlipProcessor(image_processor, tokenizer).save_pretrained(folder)
    return folder


def build_tiny_git(folder: str | Path, seed: int = 0) -> Path:
    """A tiny GIT captioning model (``GitForCausalLM`` + ``GitProcessor``: a CLIP image processor
    at 32x32 and a BERT WordPiece tokenizer) saved with ``save_pretrained``; returns the folder.
    Its weights are drawn wider than GIT's default so that captions depend on the picture."""
    from transformers import BertTokenizer, CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    folder = Path(folder)
    vocab = _wordpiece_vocab()
    tokenizer = BertTokenizer(vocab=vocab)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = GitConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, initializer_range=0.3),
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=64, bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"],
        pad_token_id=vocab["[PAD]"], initializer_range=0.3,
    )
    _seed(seed)
    GitForCausalLM(config).eval().save_pretrained(folder)
    GitProcessor(image_processor, tokenizer).save_pretrained(folder)
    return folder


def _byte_level_vocab() -> dict[str, int]:
    """CLIP's byte-level BPE alphabet (each byte alone and as a word end) with no merges."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def build_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """A tiny transformers CLIP model (``CLIPModel`` + ``CLIPProcessor``, byte-level BPE
    tokenizer, 32x32 input, 16-d projection) saved with ``save_pretrained``; returns the folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = Path(folder)
    vocab = _byte_level_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77,
                         bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                         pad_token_id=vocab["<|endoftext|>"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    _seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    CLIPProcessor(image_processor, tokenizer).save_pretrained(folder)
    return folder


TINY_OPEN_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def build_tiny_open_clip(folder: str | Path, seed: int = 0) -> Path:
    """A tiny open_clip ViT (32x32 input, 16-d embeddings, open_clip's own BPE tokenizer) saved
    like a hub model folder: ``open_clip_config.json`` + ``open_clip_pytorch_model.bin``.
    Load it with ``create_model_and_transforms("local-dir:<folder>")``; returns the folder."""
    import json

    import open_clip
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _seed(seed)
    model = open_clip.CLIP(**TINY_OPEN_CLIP_CONFIG).eval()
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    config = {
        "model_cfg": TINY_OPEN_CLIP_CONFIG,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                           "interpolation": "bicubic", "resize_mode": "shortest"},
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def build_tiny_sentence_transformer(folder: str | Path, seed: int = 0) -> Path:
    """A tiny sentence-transformers model (BERT, 2 layers, 32-d, mean pooling, normalised)
    saved with ``SentenceTransformer.save``; returns the folder."""
    from sentence_transformers import SentenceTransformer
    try:  # sentence-transformers 6 moved the modules; the old path warns there
        import sentence_transformers.sentence_transformer.modules as st_models
    except ImportError:
        import sentence_transformers.models as st_models  # type: ignore[no-redef]
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = Path(folder)
    hf = folder.parent / f"{folder.name}-hf"
    vocab = _wordpiece_vocab()
    _seed(seed)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=128)).save_pretrained(hf)
    BertTokenizer(vocab=vocab).save_pretrained(hf)
    transformer = st_models.Transformer(str(hf), max_seq_length=64)
    modules = [transformer, st_models.Pooling(32, "mean"), st_models.Normalize()]
    st = SentenceTransformer(modules=modules, device="cpu")
    st.save(str(folder))
    return folder


def __getattr__(name: str) -> Any:
    """``StoreConformance`` and its helpers load lazily: they import pytest."""
    if name in ("StoreConformance", "make_item", "CONFORMANCE_SPACES"):
        from imgctx import _store_conformance

        return {"StoreConformance": _store_conformance.StoreConformance,
                "make_item": _store_conformance.make_item,
                "CONFORMANCE_SPACES": _store_conformance.SPACES}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
