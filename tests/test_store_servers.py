"""The chroma and qdrant stores against servers, and how they fail when a server is not usable.

A real Chroma server (the ``chroma`` command that chromadb ships) runs on a loopback port for
this module; the whole conformance suite runs against it, and one Extractor writes while
another reads. There is no Qdrant server binary here, so Qdrant's server paths are tested for
their failures only (see ``test_qdrant_wrong_api_key``).
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imgctx import Extractor
from imgctx._errors import IncompatibleIndexError, StoreError
from imgctx._migrate import open_store
from imgctx._types import SpaceSpec
from imgctx.testing import CONFORMANCE_SPACES, StoreConformance, make_item, settings_for_tests

pytest.importorskip("chromadb")
pytest.importorskip("qdrant_client")

from imgctx._backends.chroma_store import ChromaStore  # noqa: E402
from imgctx._backends.qdrant_store import QdrantStore  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chroma_command() -> str | None:
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.exists() else shutil.which("chroma")


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server started from the chromadb package, on a free loopback port."""
    command = _chroma_command()
    if command is None:
        pytest.skip("the chroma command (from the chromadb package) is not installed")
    port = _free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen([command, "run", "--path", str(folder / "data"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.skip(f"the chroma server exited with {proc.returncode}: {(folder / 'server.log').read_text()[-500:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.skip("the chroma server did not answer its heartbeat within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class TestChromaServerStore(StoreConformance):
    """The conformance suite against the Chroma server: one collection per test."""

    @pytest.fixture(autouse=True)
    def _server(self, chroma_url: str) -> None:
        self.url = chroma_url

    def open_store(self, location: Path) -> Any:
        collection = "t" + hashlib.sha256(str(location).encode()).hexdigest()[:20]
        return ChromaStore(url=self.url, collection=collection)


def test_one_extractor_writes_another_reads_through_the_chroma_server(
    chroma_url: str, photo_dir: Path, tmp_path: Path
) -> None:
    settings = settings_for_tests(tmp_path / "unused", preset="tiny", store="chroma", collection_name="photos",
                                  plugin_settings={"store": {"url": chroma_url}})
    with Extractor(settings=settings) as writer:
        report = writer.process_directory(photo_dir)
        assert report.failed == 0 and report.processed == len(list(photo_dir.iterdir()))
        written = writer.list()
    assert not (tmp_path / "unused").exists()  # nothing embedded: everything went to the server
    with Extractor(settings=settings) as reader:
        assert reader.count() == len(written)
        assert [r.id for r in reader.list()] == [r.id for r in written]
        chelsea = next(r for r in written if r.filename.startswith("chelsea"))
        assert reader.get(chelsea.id) == chelsea
        hits = reader.search_image(photo_dir / chelsea.filename, exclude_self=False, limit=1)
        assert hits[0].record.id == chelsea.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
        colour = chelsea.objects[0]
        assert all(colour in h.record.objects for h in reader.search(colour, objects=[colour]))
        reader.delete(chelsea.id)
    with Extractor(settings=settings) as third:
        assert third.count() == len(written) - 1
        again = third.process_directory(photo_dir)  # unchanged files skip; the deleted one comes back
        assert (again.processed, again.skipped) == (1, len(written) - 1)


def test_chroma_collection_built_by_other_models_is_refused_when_opened(chroma_url: str, tmp_path: Path) -> None:
    built = ChromaStore(url=chroma_url, collection="other-models")
    built.configure([SpaceSpec("image", "someone-elses-model", 64), SpaceSpec("text", "tiny-text", 128)])
    built.close()
    settings = settings_for_tests(tmp_path, preset="tiny", store="chroma", collection_name="other-models",
                                  plugin_settings={"store": {"url": chroma_url}})
    with pytest.raises(IncompatibleIndexError, match=f"the store at {chroma_url} was built with image=someone-elses-model"):
        Extractor(settings=settings)


@pytest.mark.parametrize("kind", ["chroma", "qdrant"])
def test_unreachable_server_is_one_store_error_at_open(kind: str, tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    settings = settings_for_tests(tmp_path, preset="tiny", store=kind,
                                  plugin_settings={"store": {"url": f"http://127.0.0.1:{port}"}})
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"cannot open the {kind} store at http://127.0.0.1:{port}"):
        Extractor(settings=settings)
    assert time.monotonic() - started < 30


def test_local_folders_built_by_other_models_are_refused_when_opened(tmp_path: Path) -> None:
    for kind, store in (("chroma", ChromaStore(path=tmp_path / "chroma")), ("qdrant", QdrantStore(path=tmp_path / "qdrant"))):
        store.configure(list(CONFORMANCE_SPACES))
        store.upsert([make_item(1)])
        store.close()
        settings = settings_for_tests(tmp_path / kind, preset="tiny", store=kind)
        with pytest.raises(IncompatibleIndexError, match="conf-img"):
            Extractor(settings=settings)


def test_collections_not_made_by_imgctx_are_refused_when_opened(tmp_path: Path) -> None:
    import chromadb
    from qdrant_client import QdrantClient, models

    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    client.create_collection("image_contexts", metadata={"owner": "someone else"})
    client.close()
    with pytest.raises(StoreError, match="not created by imgctx"):
        ChromaStore(path=tmp_path / "chroma")
    qdrant = QdrantClient(path=str(tmp_path / "qdrant"))
    qdrant.create_collection("image_contexts", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    qdrant.close()
    with pytest.raises(StoreError, match="not created by imgctx"):
        QdrantStore(path=tmp_path / "qdrant")


def test_qdrant_local_folder_in_use_is_a_store_error(tmp_path: Path) -> None:
    first = QdrantStore(path=tmp_path)
    try:
        with pytest.raises(StoreError, match="cannot open the qdrant store"):
            QdrantStore(path=tmp_path)
    finally:
        first.close()


class _RefusesKey(http.server.BaseHTTPRequestHandler):
    keys_seen: list[str | None] = []

    def _refuse(self) -> None:
        self.keys_seen.append(self.headers.get("api-key"))
        body = b'{"status":{"error":"Must provide an API key or an Authorization bearer token"},"time":0.0}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _refuse

    def log_message(self, *args: Any) -> None:
        return None


def test_qdrant_wrong_api_key(tmp_path: Path) -> None:
    """A stand-in endpoint (not a Qdrant server) that answers every request 401 the way a Qdrant
    server with another API key does; the real qdrant-client talks to it over HTTP."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusesKey)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(StoreError, match="refused the API key"):
            QdrantStore(url=url, api_key="wrong")
        settings = settings_for_tests(tmp_path, plugin_settings={"store": {"api_key": "from-settings"}})
        with pytest.raises(StoreError, match=r"cannot open the qdrant store at http://127\.0\.0\.1.*refused the API key"):
            open_store(f"qdrant+{url}", settings)
        assert _RefusesKey.keys_seen[0] == "wrong" and _RefusesKey.keys_seen[-1] == "from-settings"
        assert "from-settings" not in repr(settings)
    finally:
        server.shutdown()
        server.server_close()
