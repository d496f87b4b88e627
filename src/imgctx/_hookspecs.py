"""pluggy hook specifications: one ``register_*`` hook per role, one for presets, one for
command-line commands.

Each role hook receives ``register(name, factory, **meta)``. ``factory(settings)`` returns a cheap
object; weights load on first use. ``meta`` may name the plugin's settings class
(``settings=MySettings``, a :class:`imgctx.PluginSettings`) and ``shared=True`` (one instance
serves every role it is registered for).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("imgctx")
hookimpl = pluggy.HookimplMarker("imgctx")

Register = Callable[..., None]


@hookspec
def register_captioners(register: Register) -> Any:
    """Register captioner factories: images -> captions."""


@hookspec
def register_image_embedders(register: Register) -> Any:
    """Register image embedder factories: images -> L2-normalised vectors."""


@hookspec
def register_text_embedders(register: Register) -> Any:
    """Register text embedder factories: texts -> L2-normalised vectors."""


@hookspec
def register_taggers(register: Register) -> Any:
    """Register tagger factories: images -> object tags with scores."""


@hookspec
def register_annotators(register: Register) -> Any:
    """Register annotator factories: images and their files -> photo metadata, text, colours, people."""


@hookspec
def register_stores(register: Register) -> Any:
    """Register vector store factories: ``factory(settings)``."""


@hookspec
def register_presets(register: Register) -> Any:
    """Register named model sets: ``register(preset)`` with an :class:`imgctx.Preset`."""


@hookspec
def register_commands(cli: Any) -> Any:
    """Add commands to the ``imgctx`` command line (a click group)."""
