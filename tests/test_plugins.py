"""Plugins: third-party entry points and built-ins register through the same pluggy hooks."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import imgctx._plugins
from imgctx import Extractor, PluginCollisionError, PluginNotFoundError
from imgctx import _hookspecs as hookspecs
from imgctx._plugins import ROLES, Registry, collect, load_registry, make_plugin_manager
from imgctx.testing import TinyImageEmbedder, TinyTextEmbedder, settings_for_tests, write_sample_photos

DEMO_MODULE = "imgctx_demo_plugin"

DEMO_SOURCE = '''
"""A throwaway third-party imgctx plugin, installed only for a test."""

import hashlib
import re

import numpy as np

from imgctx import hookimpl
from imgctx._types import Tag

#: Every text the demo text embedder was asked to embed, in order.
EMBEDDED_TEXTS = []
#: How many images the demo tagger has tagged.
TAGGED = []


class DemoTextEmbedder:
    name = "demo-text"
    dim = 32
    loaded = True
    load_time = 0.0
    device = "cpu"

    def __init__(self, settings=None, **options):
        self.settings = settings
        self.options = options

    def load(self):
        return None

    def embed_texts(self, texts):
        EMBEDDED_TEXTS.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for k, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                h = int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "little")
                out[k, h % self.dim] += 1.0
            norm = float(np.linalg.norm(out[k]))
            if norm:
                out[k] /= norm
        return out


class DemoTagger:
    name = "demo-tagger"
    loaded = True
    load_time = 0.0
    device = "cpu"

    def __init__(self, settings=None, **options):
        self.settings = settings

    def load(self):
        return None

    def tag(self, images):
        TAGGED.append(len(images))
        out = []
        for img in images:
            w, h = img.size
            shape = "Demo-Wide" if w >= h else "Demo-Tall"
            out.append([Tag("Demo-Gizmo", 0.9), Tag(shape, 0.6)])
        return out


@hookimpl
def register_text_embedders(register):
    register("demo-text", lambda settings, **kw: DemoTextEmbedder(settings, **kw), author="demo")


@hookimpl
def register_taggers(register):
    register("demo-tagger", lambda settings, **kw: DemoTagger(settings, **kw))
'''

DEMO_METADATA = "Metadata-Version: 2.1\nName: imgctx-demo-plugin\nVersion: 0.1\n"
DEMO_ENTRY_POINTS = f"[imgctx]\ndemo = {DEMO_MODULE}\n"


def _forget_demo_module() -> None:
    sys.modules.pop(DEMO_MODULE, None)


@pytest.fixture
def demo_plugin(tmp_path: Path) -> Iterator[Registry]:
    """A throwaway distribution with an ``imgctx`` entry point, on sys.path for one test."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{DEMO_MODULE}.py").write_text(DEMO_SOURCE)
    dist_info = site / f"{DEMO_MODULE}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(DEMO_METADATA)
    (dist_info / "entry_points.txt").write_text(DEMO_ENTRY_POINTS)
    _forget_demo_module()
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield load_registry(refresh=True)
    finally:
        # off sys.path first, so that the rebuilt shared registry no longer sees the plugin
        while str(site) in sys.path:
            sys.path.remove(str(site))
        _forget_demo_module()
        importlib.invalidate_caches()
        load_registry(refresh=True)


# -- a real entry-point plugin ------------------------------------------------------------------


def test_entry_point_plugin_is_listed(demo_plugin: Registry) -> None:
    assert "demo-text" in demo_plugin.names("text_embedder")
    assert "demo-tagger" in demo_plugin.names("tagger")
    info = demo_plugin.get("text_embedder", "demo-text")
    assert info.plugin == "demo"
    assert info.meta == {"author": "demo"}
    assert demo_plugin.get("tagger", "demo-tagger").plugin == "demo"
    # the built-ins are still there beside it; the test doubles are not (no test asked for them)
    assert "minilm" in demo_plugin.names("text_embedder")
    assert "efficientnet-lite0" in demo_plugin.names("tagger")
    assert "tiny-text" not in demo_plugin.names("text_embedder")
    # the cached registry an Extractor asks for is the refreshed one
    assert load_registry() is demo_plugin


def test_entry_point_plugin_is_gone_after_refresh_without_it(tmp_path: Path) -> None:
    """The demo fixture's finalizer leaves no trace: other tests see only the built-ins."""
    registry = load_registry()
    assert "demo-text" not in registry.names("text_embedder")
    assert "demo-tagger" not in registry.names("tagger")


def test_extractor_uses_entry_point_plugin(demo_plugin: Registry, tmp_path: Path) -> None:
    demo = sys.modules[DEMO_MODULE]
    photos = write_sample_photos(tmp_path / "photos", ("chelsea", "rocket"))
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings, text_embedder="demo-text", tagger="demo-tagger", store="memory") as ex:
        assert type(ex.components.text_embedder).__name__ == "DemoTextEmbedder"
        assert type(ex.components.text_embedder).__module__ == DEMO_MODULE
        assert [type(t).__name__ for t in ex.components.taggers] == ["DemoTagger"]
        assert ex.components.text_embedder.settings is ex.settings
        assert {s.name: s.model for s in ex.components.spaces()} == {"image": "tiny-image", "text": "demo-text"}
        statuses = ex.models.status()
        assert statuses["text_embedder"].name == "demo-text"
        assert statuses["tagger"].name == "demo-tagger"

        results = [ex.process(p) for p in photos]
        assert demo.TAGGED, "the demo tagger was never called"
        by_name = {Path(r.record.path).name: r.record for r in results}
        chelsea, rocket = by_name["chelsea.jpg"], by_name["rocket.jpg"]
        # the demo tags, lower-cased by the pipeline, in the tagger's order (both photos are wide)
        for record in (chelsea, rocket):
            assert record.objects == ("demo-gizmo", "demo-wide")
            assert [t.score for t in record.tags] == pytest.approx([0.9, 0.6])
            assert "demo-gizmo" in record.caption
            stored = ex.get(record.id)
            assert stored.objects == record.objects
            assert [t.label for t in stored.tags] == list(record.objects)
        assert ex.count("demo-gizmo") == 2
        assert ex.count("tiny-colors") == 0
        # the documents the demo text embedder saw are caption + demo tags
        assert any("demo-gizmo" in t for t in demo.EMBEDDED_TEXTS)

        seen = len(demo.EMBEDDED_TEXTS)
        hits = ex.search("demo gizmo", limit=5)
        assert demo.EMBEDDED_TEXTS[seen:] == ["demo gizmo"], "search did not use the demo text embedder"
        assert {h.record.id for h in hits} == {chelsea.id, rocket.id}
        assert all(h.score > 0 for h in hits)
        assert ex.search("demo gizmo", objects="demo-gizmo", limit=5)
        assert ex.search("demo gizmo", objects="red", limit=5) == []


def test_entry_point_plugin_by_name_needs_the_refreshed_registry(demo_plugin: Registry, tmp_path: Path) -> None:
    """An explicit registry without entry points does not know the demo plugin."""
    no_eps = collect(make_plugin_manager(entry_points=False, extra=("imgctx.testing",)))
    assert "demo-text" not in no_eps.names("text_embedder")
    with pytest.raises(PluginNotFoundError):
        Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny"), text_embedder="demo-text",
                  store="memory", registry=no_eps)


# -- names: unknown, collisions, built-ins, instances ------------------------------------------


def test_unknown_plugin_name_lists_known_names(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with pytest.raises(PluginNotFoundError) as err:
        Extractor(settings=settings, text_embedder="no-such-embedder", store="memory")
    exc = err.value
    assert exc.name == "no-such-embedder"
    assert exc.role == "text_embedder"
    assert exc.known == sorted(load_registry(extra=settings.load_plugins).names("text_embedder"))
    for known in ("minilm", "tiny-text"):
        assert known in exc.known
        assert known in str(exc)
    assert "no-such-embedder" in str(exc)


@pytest.mark.parametrize(
    ("kwargs", "role", "known"),
    [
        ({"store": "nope"}, "store", "faiss"),
        ({"tagger": ["tiny-colors", "nope"]}, "tagger", "tiny-colors"),
        ({"image_embedder": "nope"}, "image_embedder", "tiny-image"),
        ({"captioner": "nope"}, "captioner", "tags-caption"),
    ],
)
def test_unknown_plugin_name_per_role(tmp_path: Path, kwargs: dict, role: str, known: str) -> None:
    with pytest.raises(PluginNotFoundError) as err:
        Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny"), **{"store": "memory", **kwargs})
    assert err.value.role == role
    assert err.value.name == "nope"
    assert known in err.value.known
    assert known in str(err.value)


def test_registry_get_unknown_name() -> None:
    registry = load_registry()
    with pytest.raises(PluginNotFoundError) as err:
        registry.get("store", "chromadb-nope")
    assert err.value.known == ["chroma", "faiss", "memory", "qdrant"]


COLLIDING_SOURCE = '''
from imgctx import hookimpl


class Other:
    name = "tiny-text"


@hookimpl
def register_text_embedders(register):
    register("tiny-text", lambda settings, **kw: Other())
'''


def test_name_collision_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "imgctx_colliding_plugin.py").write_text(COLLIDING_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "imgctx_colliding_plugin", raising=False)
    pm = make_plugin_manager(
        default_plugins=("imgctx.testing", "imgctx_colliding_plugin"), entry_points=False
    )
    with pytest.raises(PluginCollisionError) as err:
        collect(pm)
    assert err.value.role == "text_embedder"
    assert err.value.name == "tiny-text"
    assert "tiny-text" in str(err.value)


def test_same_name_in_different_roles_is_no_collision() -> None:
    """Each EfficientNet-Lite is both a tagger and an image embedder, from one plugin."""
    registry = collect(make_plugin_manager(default_plugins=("imgctx._backends.offline",), entry_points=False))
    lites = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
    assert registry.names("tagger") == lites
    assert registry.names("image_embedder") == lites


def test_collision_within_one_plugin_object_raises() -> None:
    from imgctx import hookimpl

    class Twice:
        @hookimpl
        def register_stores(self, register):  # noqa: ANN001
            register("dup", lambda settings: None)
            register("dup", lambda settings: None)

    pm = make_plugin_manager(default_plugins=(), entry_points=False)
    pm.register(Twice(), name="twice")
    with pytest.raises(PluginCollisionError):
        collect(pm)


def test_builtins_register_through_the_same_hooks() -> None:
    registry = load_registry()
    assert {"faiss", "memory"} <= set(registry.names("store"))
    assert "efficientnet-lite0" in registry.names("image_embedder")
    assert "efficientnet-lite0" in registry.names("tagger")
    assert "minilm" in registry.names("text_embedder")
    assert "tags-caption" in registry.names("captioner")
    # each came from a hook implementation of a built-in plugin module
    assert registry.get("store", "faiss").plugin == "imgctx._backends.faiss_store"
    assert registry.get("store", "memory").plugin == "imgctx._backends.memory_store"
    assert registry.get("captioner", "tags-caption").plugin == "imgctx._backends.composed"
    assert registry.get("text_embedder", "minilm").plugin == "imgctx._backends.offline"
    assert registry.get("tagger", "efficientnet-lite0").meta["shared"] is True
    assert set(registry.presets()) == {"offline", "standard"}  # the test doubles' "tiny" is not there
    assert registry.presets()["offline"][1] == "imgctx._presets"
    # a plugin manager with no default plugins and no entry points knows nothing
    empty = collect(make_plugin_manager(default_plugins=(), entry_points=False))
    assert all(empty.names(role) == [] for role in ROLES)
    # and the built-ins alone give exactly what the default plugins register
    only_builtins = collect(make_plugin_manager(entry_points=False))
    for role in ROLES:
        assert set(only_builtins.names(role)) <= set(registry.names(role))


def test_load_registry_is_cached_and_refreshable() -> None:
    first = load_registry()
    assert load_registry() is first
    fresh = load_registry(refresh=True)
    assert fresh is not first
    assert load_registry() is fresh
    assert {r: fresh.names(r) for r in ROLES} == {r: first.names(r) for r in ROLES}


def test_selection_by_instance(tmp_path: Path) -> None:
    class MyTagger:
        name = "my-tagger"
        loaded = True
        load_time = 0.0

        def load(self) -> None:
            return None

        def tag(self, images):  # noqa: ANN001
            from imgctx._types import Tag

            return [[Tag("Mine", 1.0)] for _ in images]

    text = TinyTextEmbedder()
    image = TinyImageEmbedder()
    tagger = MyTagger()
    photos = write_sample_photos(tmp_path / "photos", ("coffee",))
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    from imgctx._backends.memory_store import MemoryStore

    store = MemoryStore()
    with Extractor(settings=settings, text_embedder=text, image_embedder=image, tagger=tagger,
                   store=store) as ex:
        assert ex.components.text_embedder is text
        assert ex.components.image_embedder is image
        assert ex.components.taggers == [tagger]
        assert ex.store is store
        result = ex.process(photos[0])
        assert result.record.objects == ("mine",)
        assert tagger in ex.components.taggers
        calls = text.calls
        ex.search("mine")
        assert text.calls == calls + 1
        assert image.calls == 1


def test_selection_mixes_names_and_instances(tmp_path: Path) -> None:
    text = TinyTextEmbedder()
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny"), text_embedder=text,
                   tagger=["tiny-colors", TinyImageEmbedder()], store="memory") as ex:
        assert ex.components.text_embedder is text
        assert type(ex.components.taggers[0]).__name__ == "TinyColorTagger"
        assert isinstance(ex.components.taggers[1], TinyImageEmbedder)


# -- hook specs and lazy factories -------------------------------------------------------------


def _hookspec_functions() -> dict[str, object]:
    return {
        name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "imgctx_spec")
    }


def test_every_hook_has_a_docstring() -> None:
    specs = _hookspec_functions()
    assert set(specs) == {*imgctx._plugins._HOOKS.values(), "register_presets", "register_commands"}
    for name, fn in specs.items():
        doc = inspect.getdoc(fn)
        assert doc and doc.strip(), f"hook {name} has no docstring"
        assert list(inspect.signature(fn).parameters) == (["cli"] if name == "register_commands" else ["register"]), name
    pm = make_plugin_manager(default_plugins=(), entry_points=False)
    for name in specs:
        assert getattr(pm.hook, name).spec is not None


def test_every_role_has_a_hook() -> None:
    assert set(imgctx._plugins._HOOKS) == set(ROLES)


def test_building_the_registry_imports_neither_torch_nor_faiss(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import imgctx._plugins
        registry = imgctx._plugins.load_registry()
        assert "faiss" in registry.names("store"), registry.names("store")
        assert "efficientnet-lite0" in registry.names("image_embedder")
        heavy = sorted(m for m in ("torch", "faiss", "transformers", "sentence_transformers") if m in sys.modules)
        assert not heavy, heavy
        # an Extractor with weight-free models and the memory store needs none of them either
        from imgctx import Extractor
        from imgctx.testing import settings_for_tests
        Extractor(settings=settings_for_tests("unused-db", preset="tiny"), store="memory").close()
        heavy = sorted(m for m in ("torch", "faiss", "transformers", "sentence_transformers") if m in sys.modules)
        assert not heavy, heavy
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
