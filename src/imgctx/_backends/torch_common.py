"""torch helpers shared by the hub-backed backends: device, dtype and threads at load time."""

from __future__ import annotations

from typing import Any

from imgctx._backends.base import import_torch, resolve_device


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
