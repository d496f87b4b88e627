"""Store URIs and ``imgctx migrate``: any pair of stores, batches, resuming after an interruption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from imgctx._backends.faiss_store import FaissStore
from imgctx._backends.memory_store import MemoryStore
from imgctx._cli import cli
from imgctx._errors import ConfigurationError, IncompatibleIndexError
from imgctx._migrate import StoreURI, migrate, open_store, parse_store_uri
from imgctx._types import SpaceSpec
from imgctx.testing import CONFORMANCE_SPACES, make_item, settings_for_tests

pytest.importorskip("chromadb")
pytest.importorskip("qdrant_client")

from imgctx._backends.chroma_store import ChromaStore  # noqa: E402
from imgctx._backends.qdrant_store import QdrantStore  # noqa: E402

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.mark.parametrize(("uri", "parsed"), [
    ("faiss:./db", StoreURI("faiss", path="./db")),
    ("faiss:/data/db#holidays", StoreURI("faiss", path="/data/db", collection="holidays")),
    ("memory:", StoreURI("memory")),
    ("chroma:rel/dir", StoreURI("chroma", path="rel/dir")),
    ("chroma+http://127.0.0.1:8000", StoreURI("chroma", url="http://127.0.0.1:8000")),
    ("chroma:https://chroma.example:443#c", StoreURI("chroma", url="https://chroma.example:443", collection="c")),
    ("qdrant::memory:", StoreURI("qdrant", path=":memory:")),
    ("qdrant+https://cluster.example:6333", StoreURI("qdrant", url="https://cluster.example:6333")),
    ("qdrant:http://localhost:6333", StoreURI("qdrant", url="http://localhost:6333")),
    ("my-store:/x", StoreURI("my-store", path="/x")),
])
def test_store_uris(uri: str, parsed: StoreURI) -> None:
    assert parse_store_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["", "faiss", "/just/a/path", "faiss:", "qdrant+ftp://x", "chroma+http:host"])
def test_bad_store_uris_are_configuration_errors(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_store_uri(uri)


def test_open_store_by_uri(tmp_path: Path) -> None:
    settings = settings_for_tests(tmp_path / "unused", collection_name="base")
    opened = [open_store(f"faiss:{tmp_path / 'f'}#one", settings), open_store("memory:", settings),
              open_store(f"chroma:{tmp_path / 'c'}", settings), open_store("qdrant::memory:", settings)]
    try:
        assert [type(s) for s in opened] == [FaissStore, MemoryStore, ChromaStore, QdrantStore]
        assert opened[0].db_file == tmp_path / "f" / "one.sqlite3"
        assert opened[2].collection == "base"
    finally:
        for s in opened:
            s.close()
    with pytest.raises(ConfigurationError, match="no server"):
        open_store("faiss+http://localhost:1", settings)
    with pytest.raises(ConfigurationError, match="unknown store"):
        open_store("nosuch:/x", settings)


def _source(path: Path, n: int = 230) -> FaissStore:
    src = FaissStore(path)
    src.configure(list(CONFORMANCE_SPACES))
    src.upsert([make_item(i, ("cat",) if i % 3 == 0 else ("dog", "animal")) for i in range(n)])
    return src


def _assert_same_index(a: Any, b: Any) -> None:
    assert a.count() == b.count() and a.count(["cat"]) == b.count(["cat"])
    assert a.list(limit=10_000) == b.list(limit=10_000)  # every field, in the same order
    ids = [r.id for r in a.list(limit=10_000)]
    assert len(set(ids)) == len(ids)
    for space in ("image", "text"):
        va, vb = a.vectors(space, ids), b.vectors(space, ids)
        assert set(va) == set(vb) == set(ids)
        assert all(np.allclose(va[i], vb[i], atol=1e-6) for i in ids)
    q = make_item(17).vectors["image"]
    assert [h[0] for h in a.query("image", q, 5, ["cat"])] == [h[0] for h in b.query("image", q, 5, ["cat"])]


def test_migrate_between_every_kind_of_store(tmp_path: Path) -> None:
    """faiss -> chroma -> qdrant -> faiss -> memory: each copy is the same index."""
    src = _source(tmp_path / "faiss")
    chain = [ChromaStore(path=tmp_path / "chroma"), QdrantStore(path=tmp_path / "qdrant"),
             FaissStore(tmp_path / "faiss2"), MemoryStore()]
    seen: list[tuple[int, int]] = []
    previous: Any = src
    for store in chain:
        report = migrate(previous, store, batch_size=64, progress=lambda d, t: seen.append((d, t)))
        assert (report.total, report.copied, report.skipped, report.destination_count) == (230, 230, 0, 230)
        _assert_same_index(src, store)
        previous = store
    assert seen[:4] == [(64, 230), (128, 230), (192, 230), (230, 230)]
    again = migrate(src, chain[1], batch_size=100)
    assert (again.copied, again.skipped) == (0, 230)
    for s in (src, *chain):
        s.close()


class _DiesAfter:
    """Wraps a real store; the n-th upsert raises as if the process were interrupted there."""

    def __init__(self, store: Any, n: int) -> None:
        self.store, self.n = store, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def upsert(self, items: Any) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt
        self.store.upsert(items)


@pytest.mark.parametrize("kind", ["faiss", "chroma", "qdrant"])
def test_interrupted_migration_resumes_without_duplicates_or_loss(tmp_path: Path, kind: str) -> None:
    src = _source(tmp_path / "src")
    opener = {"faiss": lambda: FaissStore(tmp_path / "dst"), "chroma": lambda: ChromaStore(path=tmp_path / "dst"),
              "qdrant": lambda: QdrantStore(path=tmp_path / "dst")}[kind]
    dst = opener()
    with pytest.raises(KeyboardInterrupt):
        migrate(src, _DiesAfter(dst, 3), batch_size=50)
    assert dst.count() == 100
    dst.close()
    dst = opener()
    src.upsert([make_item(5, ("bird",), seed=500)])  # a record changed since the first run is copied again
    report = migrate(src, dst, batch_size=50)
    assert (report.copied, report.skipped, report.destination_count) == (131, 99, 230)
    _assert_same_index(src, dst)
    src.close()
    dst.close()


@pytest.mark.parametrize("kind", ["chroma", "qdrant"])
def test_migration_killed_mid_run_resumes(tmp_path: Path, kind: str) -> None:
    """A process SIGKILLed in the middle of a migration (no close, no cleanup) loses nothing."""
    _source(tmp_path / "src").close()
    script = textwrap.dedent(f"""
        import os, signal
        from imgctx._migrate import migrate, open_store
        src, dst = open_store({f"faiss:{tmp_path / 'src'}"!r}), open_store({f"{kind}:{tmp_path / 'dst'}"!r})
        def progress(done, total):
            if done >= 120:
                os.kill(os.getpid(), signal.SIGKILL)
        migrate(src, dst, batch_size=40, progress=progress)
    """)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    src, dst = open_store(f"faiss:{tmp_path / 'src'}"), open_store(f"{kind}:{tmp_path / 'dst'}")
    assert dst.count() == 120
    report = migrate(src, dst, batch_size=40)
    assert (report.copied, report.skipped) == (110, 120)
    _assert_same_index(src, dst)
    src.close()
    dst.close()


def test_destination_built_by_other_models_is_refused(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", n=5)
    dst = QdrantStore(path=tmp_path / "dst")
    dst.configure([SpaceSpec("image", "another-model", 8), CONFORMANCE_SPACES[1]])
    with pytest.raises(IncompatibleIndexError, match="another-model"):
        migrate(src, dst)
    assert dst.count() == 0
    src.close()
    dst.close()


def test_empty_source_copies_nothing(tmp_path: Path) -> None:
    src, dst = FaissStore(tmp_path / "src"), MemoryStore()
    report = migrate(src, dst)
    assert (report.total, report.copied, report.destination_count) == (0, 0, 0)
    with pytest.raises(ConfigurationError):
        migrate(src, dst, batch_size=0)
    src.close()


def test_cli_migrate(tmp_path: Path) -> None:
    _source(tmp_path / "src", n=40).close()
    runner = CliRunner()
    args = ["migrate", "--from", f"faiss:{tmp_path / 'src'}", "--to", f"qdrant:{tmp_path / 'dst'}", "--batch-size", "16"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "40 copied, 0 already there, of 40 records; the destination holds 40" in first.output
    again = runner.invoke(cli, [*args, "--json"])
    assert again.exit_code == 0 and json.loads(again.output)["skipped"] == 40
    bad = runner.invoke(cli, ["migrate", "--from", "nonsense", "--to", "memory:"])
    assert bad.exit_code == 1 and "not a store URI" in bad.output
    unreachable = runner.invoke(cli, ["migrate", "--from", f"faiss:{tmp_path / 'src'}", "--to", "qdrant+http://127.0.0.1:9"])
    assert unreachable.exit_code == 1 and "cannot open the qdrant store" in unreachable.output
