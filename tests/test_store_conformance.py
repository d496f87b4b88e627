"""Every built-in store passes the one conformance suite from ``imgctx.testing``.

The chroma and qdrant classes skip (saying so) where their optional package is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imgctx._backends.faiss_store import FaissStore
from imgctx._backends.memory_store import MemoryStore
from imgctx.testing import StoreConformance


class TestFaissStore(StoreConformance):
    def open_store(self, location: Path) -> Any:
        return FaissStore(location)


class TestFaissStoreApproximate(StoreConformance):
    """The faiss store with IVF search from the first vectors on (exact_search_limit=0)."""

    def open_store(self, location: Path) -> Any:
        return FaissStore(location, exact_search_limit=0)


class TestMemoryStore(StoreConformance):
    persistent = False

    def open_store(self, location: Path) -> Any:
        return MemoryStore()


class TestChromaStore(StoreConformance):
    def open_store(self, location: Path) -> Any:
        pytest.importorskip("chromadb")
        from imgctx._backends.chroma_store import ChromaStore

        return ChromaStore(path=location)


class TestQdrantStore(StoreConformance):
    def open_store(self, location: Path) -> Any:
        pytest.importorskip("qdrant_client")
        from imgctx._backends.qdrant_store import QdrantStore

        return QdrantStore(path=location)


def test_registering_the_stores_imports_no_client_library() -> None:
    """chroma and qdrant are built-in plugins, but their packages load only when opened."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from imgctx._plugins import load_registry\n"
        "import imgctx._migrate, imgctx.testing\n"
        "names = load_registry().names('store')\n"
        "print(','.join(names) + '|' + ','.join(m for m in ('chromadb', 'qdrant_client', 'pytest') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "chroma,faiss,memory,qdrant|"
