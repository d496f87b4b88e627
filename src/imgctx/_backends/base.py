"""Shared machinery for model backends: lazy, locked, timed loading and torch device choice."""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import Field

from imgctx._errors import MissingDependencyError
from imgctx._settings import PluginSettings, plugin_config


class TagSettings(PluginSettings):
    """Settings of the built-in taggers (``IMGCTX_TAG_*``)."""

    model_config = plugin_config("tag")

    threshold: float = Field(0.1, ge=0.0, le=1.0, description="Minimum tagger confidence for an object tag.")
    limit: int = Field(5, ge=1, description="At most this many fine labels per image (coarse nouns come on top).")

log = logging.getLogger(__name__)


def load_upright(path: str, side: int, fallback: Any) -> Any:
    """The image file at ``path`` again, upright RGB with its long side at most ``side`` (JPEG
    decoded at reduced scale), for a model that wants another size than the decoded image;
    ``fallback`` (the decoded image) when there is no path or the file cannot be decoded again.
    The file already passed ingest's size checks."""
    if not path:
        return fallback
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.draft("RGB", (side, side))
            upright = ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, ValueError):
        return fallback
    upright.thumbnail((side, side))
    return upright


class LazyModel:
    """Loads its weights once, on first use or on ``load()``, and records how long it took."""

    name: str = "model"

    def __init__(self, device: str = "cpu") -> None:
        self.device_setting = device
        self._load_lock = threading.Lock()
        self._loaded = False
        self.load_time: float | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def device(self) -> str:
        return resolve_device(self.device_setting) if self._loaded else self.device_setting

    def load(self) -> None:
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded:
                return
            log.info("loading %s on %s", self.name, self.device_setting)
            start = time.perf_counter()
            with quiet_loading():
                self._load()
            self.load_time = time.perf_counter() - start
            self._loaded = True
            log.info("%s loaded in %.2fs", self.name, self.load_time)

    def _load(self) -> None:  # pragma: no cover - every backend overrides it
        raise NotImplementedError


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No progress bars from huggingface_hub or transformers ("Loading weights", downloads)
    while a model loads, unless imgctx logs at INFO or below: a library stays quiet unless
    asked. The bars' previous state is restored afterwards."""
    if log.isEnabledFor(logging.INFO) or importlib.util.find_spec("huggingface_hub") is None:
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    hub_bars = not are_progress_bars_disabled()
    tf = sys.modules.get("transformers.utils.logging")
    tf_bars = tf.is_progress_bar_enabled() if tf is not None else hub_bars  # it follows the hub's at import
    disable_progress_bars()
    if tf is not None:
        tf.disable_progress_bar()
    try:
        yield
    finally:
        if hub_bars:
            enable_progress_bars()
        tf = sys.modules.get("transformers.utils.logging")
        if tf is not None and tf_bars:
            tf.enable_progress_bar()


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("PyTorch (needed by this model)", "offline") from None
    return torch


def resolve_device(setting: str) -> str:
    """'cpu', 'cuda' or 'auto' (cuda when available) -> a torch device string."""
    if setting == "auto":
        torch = import_torch()
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting
