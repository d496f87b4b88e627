"""Plugin loading: built-ins and third-party plugins register through the same hooks.

A :class:`Registry` is built by :func:`load_registry`, which makes a fresh plugin manager,
registers ``DEFAULT_PLUGINS``, every ``imgctx`` entry point and the modules named in the
``load_plugins`` setting, and collects what they register (factories per role, presets).
Nothing is global: each Extractor asks for a registry (built once per set of plugins, on first
use). The test doubles of :mod:`imgctx.testing` are not a default plugin: tests load them by
name (``load_plugins=("imgctx.testing",)``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from imgctx import _hookspecs as hookspecs
from imgctx._errors import ConfigurationError, PluginCollisionError, PluginNotFoundError
from imgctx._presets import Preset

ROLES = ("captioner", "image_embedder", "text_embedder", "tagger", "annotator", "store")
ENTRY_POINT_GROUP = "imgctx"
DEFAULT_PLUGINS = (
    "imgctx._backends.offline",
    "imgctx._backends.composed",
    "imgctx._backends.git_caption",
    "imgctx._backends.blip",
    "imgctx._backends.clip",
    "imgctx._backends.sentence",
    "imgctx._backends.photo_metadata",
    "imgctx._backends.ocr",
    "imgctx._backends.colors",
    "imgctx._backends.people",
    "imgctx._backends.memory_store",
    "imgctx._backends.faiss_store",
    "imgctx._backends.chroma_store",
    "imgctx._backends.qdrant_store",
    "imgctx._presets",
    "imgctx.server.commands",
    "imgctx._cli_export",
)

_HOOKS = {
    "captioner": "register_captioners",
    "image_embedder": "register_image_embedders",
    "text_embedder": "register_text_embedders",
    "tagger": "register_taggers",
    "annotator": "register_annotators",
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


def settings_classes(info: PluginInfo) -> tuple[Any, ...]:
    """The settings classes a factory was registered with (``settings=`` a class or a tuple)."""
    own = info.meta.get("settings")
    if own is None:
        return ()
    return tuple(own) if isinstance(own, (tuple, list)) else (own,)


def describe_plugins(registry: Registry, commands: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """What each plugin registers: roles and names, presets, settings (as environment
    variables by group) and ``commands`` (plugin name -> command names), for ``imgctx plugins``."""
    out: dict[str, dict[str, Any]] = {}

    def entry(plugin: str) -> dict[str, Any]:
        return out.setdefault(plugin, {"roles": {}, "presets": [], "settings": {}, "commands": []})

    for info in registry.all():
        item = entry(info.plugin)
        item["roles"].setdefault(info.role, []).append(info.name)
        for own in settings_classes(info):
            prefix = str(own.model_config.get("env_prefix", ""))
            item["settings"][own.group()] = sorted(f"{prefix}{name.upper()}" for name in own.model_fields)
    for name, (_, plugin) in registry.presets().items():
        entry(plugin)["presets"].append(name)
    for plugin, names in commands.items():
        entry(plugin)["commands"].extend(names)
    return out


class Registry:
    """Factories by role and name, and the presets."""

    def __init__(self) -> None:
        self._by_role: dict[str, dict[str, PluginInfo]] = {role: {} for role in ROLES}
        self._presets: dict[str, tuple[Preset, str]] = {}

    def add_preset(self, preset: Preset, plugin: str = "") -> None:
        if preset.name in self._presets:
            raise PluginCollisionError("preset", preset.name)
        self._presets[preset.name] = (preset, plugin)

    def preset(self, name: str) -> Preset:
        if name not in self._presets:
            known = ", ".join(sorted(self._presets))
            raise ConfigurationError(f"unknown preset {name!r}; known presets: {known}")
        return self._presets[name][0]

    def presets(self) -> dict[str, tuple[Preset, str]]:
        """Every preset by name, with the plugin that registered it."""
        return dict(self._presets)

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
    default_plugins: Iterable[str] = DEFAULT_PLUGINS, entry_points: bool = True,
    extra: Iterable[str] = (),
) -> pluggy.PluginManager:
    """A fresh plugin manager with the hook specs, the built-ins, (optionally) the entry points
    and the ``extra`` modules, by import name."""
    pm = pluggy.PluginManager("imgctx")
    pm.add_hookspecs(hookspecs)
    for module_name in default_plugins:
        pm.register(importlib.import_module(module_name), name=module_name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for module_name in extra:
        if pm.get_plugin(module_name) is not None:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot load the plugin module {module_name!r}: {exc}") from None
        pm.register(module, name=module_name)
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
    for impl in pm.hook.register_presets.get_hookimpls():
        impl.function(lambda preset, _plugin=impl.plugin_name: registry.add_preset(preset, _plugin))
    return registry


_lock = threading.Lock()
_cache: dict[tuple[bool, tuple[str, ...]], Registry] = {}


def load_registry(refresh: bool = False, entry_points: bool = True, extra: Iterable[str] = ()) -> Registry:
    """The registry of built-in and installed plugins (and the ``extra`` modules), built once
    per process and set of plugins, on first use.

    The cache holds only factories (no models), so sharing it between Extractors is safe;
    ``refresh=True`` forgets every cached registry and rebuilds this one, e.g. after installing a
    plugin in a running notebook.
    """
    key = (entry_points, tuple(extra))
    with _lock:
        if refresh:
            _cache.clear()
        if key not in _cache:
            _cache[key] = collect(make_plugin_manager(entry_points=entry_points, extra=key[1]))
        return _cache[key]
