"""torch helpers shared by the hub-backed backends: device, dtype and threads at load time."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from imgctx._backends.base import import_torch, resolve_device
from imgctx._settings import PluginSettings, plugin_config


class TorchSettings(PluginSettings):
    """Settings of the torch backends (``IMGCTX_TORCH_*``)."""

    model_config = plugin_config("torch")

    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: torch's own choice).")


def prepare_torch(device_setting: str, torch_threads: int | None, extra: str = "standard") -> tuple[Any, str, Any]:
    """(torch, device, dtype): the resolved device, and half precision on CUDA, float32 on CPU."""
    torch = import_torch()
    if torch_threads:
        torch.set_num_threads(torch_threads)
    device = resolve_device(device_setting)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    return torch, device, dtype


def l2_normalise(torch: Any, x: Any) -> Any:
    return torch.nn.functional.normalize(x.float(), dim=-1)
