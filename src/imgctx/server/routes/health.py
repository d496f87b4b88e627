"""Health, status, config, metrics and info (``/api/v1``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic_settings import BaseSettings

from imgctx import ImgctxError, __version__
from imgctx.server.errors import now_iso
from imgctx.server.hub import WEBSOCKET_PATHS
from imgctx.server.schemas import HealthResponse
from imgctx.server.state import AppState, get_state

public = APIRouter(prefix="/api/v1", tags=["health"])  # no API key needed
router = APIRouter(prefix="/api/v1", tags=["health"])


def _count(state: AppState) -> int | None:
    try:
        return state.extractor.count()
    except ImgctxError:
        return None


def _models_loaded(state: AppState) -> bool:
    return all(s.loaded for s in state.extractor.models.status().values())


@public.get("/health", response_model=HealthResponse)
async def health(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Service health and basic store facts."""
    total = await state.run(_count, state)
    return {
        "status": "healthy" if total is not None else "degraded",
        "version": __version__,
        "database_connected": total is not None,
        "models_loaded": _models_loaded(state),
        "uptime": state.uptime,
        "stats": {
            "total_images": total,
            "collection_name": state.settings.collection_name,
            "db_path": str(state.settings.db_path),
        },
    }


def _system(state: AppState) -> dict[str, Any]:
    import psutil

    mem = psutil.virtual_memory()
    disk_path = state.settings.db_path if state.settings.db_path.exists() else state.guard.base
    disk = psutil.disk_usage(str(disk_path))
    proc = psutil.Process()
    with proc.oneshot():
        rss = proc.memory_info().rss
        threads = proc.num_threads()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": psutil.cpu_count(),
        "memory": {"total": mem.total, "available": mem.available, "used": mem.used, "percent": mem.percent},
        "disk": {"path": str(disk_path), "total": disk.total, "used": disk.used, "free": disk.free,
                 "percent": disk.percent},
        "process": {"pid": proc.pid, "memory_rss": rss, "threads": threads},
    }


@router.get("/status")
async def status(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """System status: CPU, memory and disk (psutil), store, models and tasks."""
    total = await state.run(_count, state)
    return {
        "status": "healthy" if total is not None else "degraded",
        "version": __version__,
        "uptime": state.uptime,
        "system": await state.run(_system, state),
        "database": {
            "connected": total is not None, "total_images": total, "store": state.settings.store,
            "collection_name": state.settings.collection_name, "db_path": str(state.settings.db_path),
        },
        "models": {role: s.loaded for role, s in state.extractor.models.status().items()},
        "tasks": state.task_manager.counts(),
        "websocket_connections": len(state.hub.connections),
        "timestamp": now_iso(),
    }


def _public(settings: BaseSettings) -> dict[str, Any]:
    """Settings as JSON values; a secret field shows only whether it is set (``<name>_set``)."""
    out: dict[str, Any] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if "SecretStr" in str(field.annotation):
            out[f"{name}_set"] = value is not None
        elif isinstance(value, dict):  # plugin settings may hold secrets: only which are set
            out[name] = {group: sorted(values) for group, values in value.items()}
        elif isinstance(value, (list, tuple)):
            out[name] = [str(v) for v in value]
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


@router.get("/config")
async def config(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """The settings in effect (library and server); secrets are never shown."""
    return {
        "settings": _public(state.settings),
        "server": {**_public(state.server), "allowed_roots": [str(r) for r in state.guard.roots]},
        "timestamp": now_iso(),
    }


@router.get("/metrics")
async def metrics(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Request counters, store size, tasks, WebSocket traffic and model load state."""
    tasks = state.task_manager.counts()
    return {
        "uptime": state.uptime,
        "requests": state.metrics.to_dict(),
        "images": {"total": await state.run(_count, state)},
        "tasks": {"total": sum(tasks.values()), "by_status": tasks},
        "websockets": state.hub.stats(),
        "models": {
            role: {"loaded": s.loaded, "load_time": s.load_time}
            for role, s in state.extractor.models.status().items()
        },
        "timestamp": now_iso(),
    }


@router.get("/info")
async def info(request: Request, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """What this service is, which models it uses, and every endpoint it serves."""
    paths = request.app.openapi()["paths"]
    endpoints = [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]
    return {
        "name": "imgctx",
        "version": __version__,
        "description": "Captions, object tags, embeddings and search for image collections.",
        "preset": state.settings.preset,
        "store": state.settings.store,
        "models": {role: s.name for role, s in state.extractor.models.status().items()},
        "documentation": {"swagger": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"},
        "endpoints": endpoints,
        "websockets": list(WEBSOCKET_PATHS),
        "timestamp": now_iso(),
    }
