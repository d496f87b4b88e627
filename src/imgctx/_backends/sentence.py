"""``sentence-transformers``: text vectors from any sentence-transformers model id or folder.

``sentence-transformers/all-MiniLM-L6-v2`` by default (``IMGCTX_SENTENCE_MODEL``). Unlike the ``offline``
preset's ``minilm``, the weights come from the model hub or its local cache (or a folder).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from imgctx._backends.hub import HubSettings, is_folder, load_error, short, use_local_files
from imgctx._backends.offline import SentenceTransformerText
from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, plugin_config

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class SentenceSettings(PluginSettings):
    """Settings of the ``sentence-transformers`` text embedder (``IMGCTX_SENTENCE_*``)."""

    model_config = plugin_config("sentence")

    model: str = Field(DEFAULT_TEXT_MODEL, description="sentence-transformers model: a hub id or a folder.")


class HubSentenceTransformer(SentenceTransformerText):
    """SentenceTransformerText whose load error names the setting for a local folder."""

    def __init__(self, model: str = DEFAULT_TEXT_MODEL, device: str = "cpu", local_files_only: bool = False,
                 batch_size: int | None = None) -> None:
        super().__init__(model=str(model), device=device, name=f"st:{short(str(model))}",
                         local_files_only=local_files_only or is_folder(str(model)), batch_size=batch_size)
        self.asked_local_files_only = self.local_files_only

    def _load(self) -> None:
        self.local_files_only = use_local_files(self.asked_local_files_only)
        super()._load()

    def _load_error(self, path: str, exc: Exception) -> Exception:
        return load_error("the sentence-transformers model", path, "IMGCTX_SENTENCE_MODEL", exc,
                          self.asked_local_files_only)


def sentence_transformers_factory(settings: Settings) -> HubSentenceTransformer:
    return HubSentenceTransformer(
        model=settings.plugin(SentenceSettings).model, device=settings.device,
        local_files_only=settings.plugin(HubSettings).local_files_only,
    )


@hookimpl
def register_text_embedders(register: Any) -> None:
    register("sentence-transformers", sentence_transformers_factory, settings=(SentenceSettings, HubSettings))
