"""Plugin loading: built-ins and third-party plugins register through the same hooks.

A :class:`Registry` is built by :func:`load_registry`, which makes a fresh plugin manager,
registers ``DEFAULT_PLUGINS`` and every ``imgctx`` entry point, and collects what they
register. Nothing is global: each Extractor asks for a registry (built once, on first use).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from imgctx import _hookspecs as hookspecs
from imgctx._errors import PluginCollisionError, PluginNotFoundError

ROLES = ("captioner", "image_embedder", "text_embedder", "tagger", "store")
ENTRY_POINT_GROUP = "imgctx"
DEFAULT_PLUGINS = (
    "imgctx._backends.offline",
    "imgctx._backends.composed",
    "imgctx._backends.blip",
    "imgctx._backends.clip",
    "imgctx._backends.sentence",
    "imgctx._backends.memory_store",
    "imgctx._backends.faiss_store",
    "imgctx._backends.chroma_store",
    "imgctx._backends.qdrant_store",
    "imgctx.testing",
)

_HOOKS = {
    "captioner": "register_captioners",
    "image_embedder": "register_image_embedders",
    "text_embedder": "register_text_embedders",
    "tagger": "register_taggers",
    "store": "register_stores",
}


@dataclass(frozen=True)
class PluginInfo:
    """A registered factory with its role, name, metadata and the plugin that registered it."""

    role: str
    name: str
    factory: Callable[..., Any]
    meta: dict[str, Any] = field(default_factory=dict)
    plugin: str = ""


class Registry:
    """Factories by role and name."""

    def __init__(self) -> None:
        self._by_role: dict[str, dict[str, PluginInfo]] = {role: {} for role in ROLES}

    def add(self, info: PluginInfo) -> None:
        table = self._by_role[info.role]
        if info.name in table:
            raise PluginCollisionError(info.role, info.name)
        table[info.name] = info

    def get(self, role: str, name: str) -> PluginInfo:
        table = self._by_role[role]
        if name not in table:
            raise PluginNotFoundError(role, name, list(table))
        return table[name]

    def names(self, role: str) -> list[str]:
        return sorted(self._by_role[role])

    def all(self) -> Iterable[PluginInfo]:
        for table in self._by_role.values():
            yield from table.values()


def make_plugin_manager(
    default_plugins: Iterable[str] = DEFAULT_PLUGINS, entry_points: bool = True
) -> pluggy.PluginManager:
    """A fresh plugin manager with the hook specs, the built-ins and (optionally) entry points."""
    pm = pluggy.PluginManager("imgctx")
    pm.add_hookspecs(hookspecs)
    for module_name in default_plugins:
        pm.register(importlib.import_module(module_name), name=module_name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return pm


def collect(pm: pluggy.PluginManager) -> Registry:
    """Run every ``register_*`` hook and gather the factories into a Registry."""
    registry = Registry()
    for role, hook_name in _HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name

            def register(
                name: str, factory: Callable[..., Any], _role: str = role,
                _plugin: str = plugin_name, **meta: Any,
            ) -> None:
                registry.add(PluginInfo(_role, name, factory, dict(meta), _plugin))

            impl.function(register)
    return registry


_lock = threading.Lock()
_cache: dict[bool, Registry] = {}


def load_registry(refresh: bool = False, entry_points: bool = True) -> Registry:
    """The registry of built-in and installed plugins, built once per process on first use.

    The cache holds only factories (no models), so sharing it between Extractors is safe;
    ``refresh=True`` rebuilds it, e.g. after installing a plugin in a running notebook.
    """
    with _lock:
        if refresh or entry_points not in _cache:
            _cache[entry_points] = collect(make_plugin_manager(entry_points=entry_points))
        return _cache[entry_points]
