"""pluggy hook specifications: one ``register_*`` hook per role.

Each hook receives ``register(name, factory, **meta)``. ``factory(settings, **options)`` returns
a cheap object; weights load on first use.
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
def register_stores(register: Register) -> Any:
    """Register vector store factories: ``factory(settings, **options)``."""
