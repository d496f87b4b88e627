"""One API, local or remote: the same scenarios run against a local ``Extractor`` and against
``imgctx.connect()`` to a live uvicorn server on loopback, and both must agree (records, scores
within 1e-6, error classes)."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from PIL import Image  # noqa: E402
from server_support import free_port, make_app, serving  # noqa: E402

from imgctx import (  # noqa: E402
    BatchReport,
    Client,
    ConfigurationError,
    Extractor,
    FileOutsideRootsError,
    ImageNotFoundError,
    ImageRecord,
    InvalidImageError,
    Progress,
    RecordNotFoundError,
    RemoteError,
    RemoteTask,
    SearchHit,
    connect,
    connect_async,
)
from imgctx.testing import settings_for_tests  # noqa: E402

TOL = 1e-6
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _root(base: Path, photo_dir: Path) -> Path:
    """``base/root/photos``: the sample photos plus an exact copy and a resized copy of one."""
    root = base / "root"
    shutil.copytree(photo_dir, root / "photos")
    photos = root / "photos"
    shutil.copy(photos / "chelsea.jpg", photos / "chelsea-copy.jpg")
    with Image.open(photos / "coffee.jpg") as img:
        img.resize((img.width // 2, img.height // 2)).save(photos / "coffee-small.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Iterator[tuple[Extractor, Client, Path]]:
    """A tiny-preset Extractor over the photos, and a client of a live server on that very
    Extractor: read scenarios see one store through two doors."""
    base = tmp_path_factory.mktemp("client")
    root = _root(base, photo_dir)
    ex = Extractor(settings=settings_for_tests(base / "db", preset="tiny"))
    assert ex.process_directory(root / "photos").failed == 0
    with serving(make_app(base, root, extractor=ex)) as url, connect(url, timeout=60) as client:
        yield ex, client, root
    ex.close()


@pytest.fixture
def fresh(tmp_path: Path, photo_dir: Path) -> Iterator[tuple[Extractor, Client, Path]]:
    """For write scenarios: a local Extractor and a server, each with its own empty store, over
    one folder of photos (so records get the same ids and paths on both sides)."""
    root = _root(tmp_path, photo_dir)
    with Extractor(settings=settings_for_tests(tmp_path / "local-db", preset="tiny")) as ex, \
            serving(make_app(tmp_path, root)) as url, connect(url) as client:
        yield ex, client, root


# -- comparing -------------------------------------------------------------------------------------


def _undated(record: ImageRecord) -> ImageRecord:
    return dataclasses.replace(record, created_at=EPOCH, updated_at=EPOCH)


def _same_hits(local: list[SearchHit], remote: list[SearchHit]) -> None:
    assert [h.record for h in remote] == [h.record for h in local]
    for a, b in zip(local, remote, strict=True):
        assert abs(a.score - b.score) <= TOL
        assert a.scores.keys() == b.scores.keys()
        assert all(abs(a.scores[k] - b.scores[k]) <= TOL for k in a.scores)


def _close(a: Any, b: Any) -> bool:
    """Equal, with floats (also inside dataclasses, tuples and dicts) within TOL."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= TOL
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            _close(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, (tuple, list)):
        return isinstance(b, (tuple, list)) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(a == b)


# -- read scenarios: one store, two doors ------------------------------------------------------------

P = "photos"


def _first_id(api: Any) -> str:
    return str(api.list(limit=1)[0].id)


HIT_SCENARIOS: dict[str, Callable[[Any, Path], list[SearchHit]]] = {
    "search": lambda api, root: api.search("dark blue", limit=4),
    "search objects": lambda api, root: api.search("dark", objects=["blue", "GREEN"], limit=5),
    "search min_score": lambda api, root: api.search("dark blue", limit=10, min_score=0.5),
    "search limit 0": lambda api, root: api.search("red", limit=0),
    "search_image path": lambda api, root: api.search_image(root / P / "rocket.jpg", limit=4),
    "search_image objects": lambda api, root: api.search_image(root / P / "coffee.jpg", objects="red", limit=3),
}


@pytest.mark.parametrize("scenario", sorted(HIT_SCENARIOS))
def test_search_scenarios_agree(pair: tuple[Extractor, Client, Path], scenario: str) -> None:
    ex, client, root = pair
    local = HIT_SCENARIOS[scenario](ex, root)
    remote = HIT_SCENARIOS[scenario](client, root)
    if scenario != "search limit 0":
        assert local, "a scenario that finds nothing compares nothing"
    _same_hits(local, remote)


def test_search_image_by_upload_and_by_record_id_agree(pair: tuple[Extractor, Client, Path]) -> None:
    """A local path (uploaded), its bytes, an open file and the record id all find what the
    Extractor finds for the path (the image itself left out)."""
    ex, client, root = pair
    path = root / P / "astronaut.jpg"
    local = ex.search_image(path, limit=5)
    assert local and all(h.record.path != str(path) for h in local)
    _same_hits(local, client.search_image(path.read_bytes(), limit=5))
    with open(path, "rb") as fh:
        _same_hits(local, client.search_image(fh, limit=5))
    _same_hits(local, client.search_image(record_id=ex.get_by_path(str(path)).id, limit=5))
    with_self = client.search_image(path, limit=5, exclude_self=False)
    assert with_self[0].record.path == str(path) and with_self[0].score == pytest.approx(1.0, abs=TOL)
    _same_hits(ex.search_image(path, limit=5, exclude_self=False), with_self)


def test_offset_pages_through_the_hits(pair: tuple[Extractor, Client, Path]) -> None:
    """``offset`` skips the best hits: a page is the slice of a longer search, locally ranked."""
    ex, client, root = pair
    _same_hits(ex.search("dark red", limit=5)[2:], client.search("dark red", limit=3, offset=2))
    _same_hits(ex.search_image(root / P / "rocket.jpg", limit=5)[3:],
               client.search_image(root / P / "rocket.jpg", limit=2, offset=3))
    record_id = ex.get_by_path(str(root / P / "rocket.jpg")).id
    _same_hits(ex.search_image(root / P / "rocket.jpg", limit=5)[1:],
               client.search_image(record_id=record_id, limit=4, offset=1))
    with pytest.raises(ConfigurationError):
        client.search("dark", offset=-1)


def test_search_image_with_a_pil_image(pair: tuple[Extractor, Client, Path]) -> None:
    """A PIL image travels as PNG; the server decodes it like a file, so the best match and the
    order agree with the local search (scores close, not bit-equal: another decode path)."""
    ex, client, root = pair
    with Image.open(root / P / "motorcycle_left.jpg") as img:
        pil = img.convert("RGB")
    local = ex.search_image(pil, limit=3)
    remote = client.search_image(pil, limit=3, exclude_self=False)
    assert [h.record.id for h in remote] == [h.record.id for h in local]
    assert all(abs(a.score - b.score) < 0.02 for a, b in zip(local, remote, strict=True))


RECORD_SCENARIOS: dict[str, Callable[[Any, Path], Any]] = {
    "list": lambda api, root: api.list(),
    "list page": lambda api, root: api.list(limit=3, offset=2),
    "list objects": lambda api, root: api.list(objects="blue,green"),
    "list past the end": lambda api, root: api.list(offset=100),
    "list large limit": lambda api, root: api.list(limit=2500),
    "count": lambda api, root: api.count(),
    "count objects": lambda api, root: api.count(objects=["red", "blue"]),
    "get": lambda api, root: api.get(_first_id(api)),
    "get_by_path": lambda api, root: api.get_by_path(root / P / "rocket.jpg"),
    "get_by_path not indexed": lambda api, root: api.get_by_path(root / P / "nope.jpg"),
    "check_image": lambda api, root: api.check_image(root / P / "chelsea.jpg"),
    "check_image threshold": lambda api, root: api.check_image(str(root / P / "coffee.jpg"), threshold=0.8, limit=1),
    "find_duplicates": lambda api, root: api.find_duplicates(),
    "find_duplicates threshold": lambda api, root: api.find_duplicates(threshold=0.8),
    "find_duplicates directory": lambda api, root: api.find_duplicates(directory=root / P),
    "find_duplicates image": lambda api, root: api.find_duplicates(image=root / P / "chelsea.jpg"),
    "find_duplicates image in folder": lambda api, root: api.find_duplicates(threshold=0.8, directory=root / P,
                                                                            image=root / P / "coffee.jpg"),
    "compare": lambda api, root: api.compare(root / P / "coffee.jpg", root / P / "coffee-small.jpg"),
    "compare copies": lambda api, root: api.compare(str(root / P / "chelsea.jpg"), root / P / "chelsea-copy.jpg",
                                                    threshold=0.99),
    "remove_duplicates dry run": lambda api, root: api.remove_duplicates(threshold=0.9, keep="largest"),
    "models.status": lambda api, root: api.models.status(),
}


def _without_timing(value: Any) -> Any:
    """Reports carry how long they took; that is the one thing allowed to differ."""
    if dataclasses.is_dataclass(value) and hasattr(value, "check_time"):
        return dataclasses.replace(value, check_time=0.0)
    return value


@pytest.mark.parametrize("scenario", sorted(RECORD_SCENARIOS))
def test_record_and_duplicate_scenarios_agree(pair: tuple[Extractor, Client, Path], scenario: str) -> None:
    ex, client, root = pair
    local = _without_timing(RECORD_SCENARIOS[scenario](ex, root))
    remote = _without_timing(RECORD_SCENARIOS[scenario](client, root))
    assert _close(local, remote), f"{scenario}:\nlocal  {local}\nremote {remote}"
    if scenario.startswith("find_duplicates") or scenario.startswith("remove"):
        assert local.groups, "the copies make at least one group"
    if scenario in ("check_image", "get_by_path", "list", "get"):
        assert local, "a scenario that finds nothing compares nothing"


ERROR_SCENARIOS: dict[str, tuple[type[Exception], Callable[[Any, Path], Any]]] = {
    "get unknown id": (RecordNotFoundError, lambda api, root: api.get("0" * 32)),
    "delete unknown id": (RecordNotFoundError, lambda api, root: api.delete("0" * 32)),
    "search empty text": (ConfigurationError, lambda api, root: api.search("   ")),
    "search negative limit": (ConfigurationError, lambda api, root: api.search("cat", limit=-1)),
    "search min_score over 1": (ConfigurationError, lambda api, root: api.search("cat", min_score=1.5)),
    "search_image missing file": (ImageNotFoundError, lambda api, root: api.search_image(root / "nope.jpg")),
    "search_image not an image": (InvalidImageError,
                                  lambda api, root: api.search_image(Path(__file__))),
    "list negative offset": (ConfigurationError, lambda api, root: api.list(offset=-1)),
    "check_image missing file": (ImageNotFoundError, lambda api, root: api.check_image(root / P / "nope.jpg")),
    "compare missing file": (ImageNotFoundError, lambda api, root: api.compare(root / P / "chelsea.jpg",
                                                                                 root / P / "nope.jpg")),
    "find_duplicates threshold": (ConfigurationError, lambda api, root: api.find_duplicates(threshold=1.5)),
    "find_duplicates missing folder": (ImageNotFoundError,
                                       lambda api, root: api.find_duplicates(directory=root / "nope")),
    "remove_duplicates unknown policy": (ConfigurationError,
                                         lambda api, root: api.remove_duplicates(keep="newest")),
    "process missing file": (ImageNotFoundError, lambda api, root: api.process(root / P / "nope.jpg")),
    "process_directory missing folder": (ImageNotFoundError,
                                         lambda api, root: api.process_directory(root / "nope")),
}


@pytest.mark.parametrize("scenario", sorted(ERROR_SCENARIOS))
def test_errors_agree(pair: tuple[Extractor, Client, Path], scenario: str) -> None:
    ex, client, root = pair
    expected, call = ERROR_SCENARIOS[scenario]
    with pytest.raises(expected) as local:
        call(ex, root)
    with pytest.raises(expected) as remote:
        call(client, root)
    assert type(remote.value) is type(local.value)
    if isinstance(local.value, RecordNotFoundError):
        assert remote.value.record_id == local.value.record_id
        assert str(remote.value) == str(local.value)
    if isinstance(local.value, ImageNotFoundError):
        assert remote.value.path is not None


def test_server_only_errors_are_remote_errors(pair: tuple[Extractor, Client, Path], tmp_path: Path) -> None:
    _, client, root = pair
    with pytest.raises(RemoteError) as info:
        client.process("/etc/hostname")
    assert info.value.status_code == 403 and info.value.error == "PathNotAllowedError"
    with pytest.raises(RemoteError) as info:
        client.task("no-such-task")
    assert info.value.status_code == 404 and info.value.error == "TaskNotFoundError"


# -- write scenarios: two stores over one folder -------------------------------------------------------


def test_process_agrees(fresh: tuple[Extractor, Client, Path]) -> None:
    ex, client, root = fresh
    path = root / P / "chelsea.jpg"
    for force in (False, False, True):  # indexed, then unchanged (skipped), then forced
        local, remote = ex.process(path, force=force), client.process(path, force=force)
        assert _undated(remote.record) == _undated(local.record)
        assert (remote.was_duplicate, remote.skipped, remote.duplicate_of) == \
            (local.was_duplicate, local.skipped, local.duplicate_of)
    copy = ex.process(root / P / "chelsea-copy.jpg"), client.process(str(root / P / "chelsea-copy.jpg"))
    assert copy[1].was_duplicate and copy[1].duplicate_of == copy[0].duplicate_of == local.record.id
    assert client.get(local.record.id) == remote.record
    (root / P / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(InvalidImageError) as local_error:
        ex.process(root / P / "broken.jpg")
    with pytest.raises(InvalidImageError) as remote_error:
        client.process(root / P / "broken.jpg")
    assert remote_error.value.path == local_error.value.path
    assert remote_error.value.reason == local_error.value.reason


def test_process_many_agrees(fresh: tuple[Extractor, Client, Path]) -> None:
    """Each file once, in order; missing and broken files are reported, not raised, with the
    same paths and reasons; a second run skips what the first indexed."""
    ex, client, root = fresh
    (root / P / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    names = ["chelsea.jpg", "coffee.jpg", "chelsea.jpg", "broken.jpg", "nope.jpg", "chelsea-copy.jpg"]
    paths = [str(root / P / n) for n in names]
    for counts in ((5, 3, 0, 2), (5, 0, 3, 2)):  # files, processed, skipped, failed
        seen: dict[str, list[Progress]] = {"local": [], "remote": []}
        local = ex.process_many(paths, progress=seen["local"].append)
        remote = client.process_many(paths, progress=seen["remote"].append)
        assert (remote.total_files, remote.processed, remote.skipped, remote.failed) == \
            (local.total_files, local.processed, local.skipped, local.failed) == counts
        assert (remote.processed_ids, remote.skipped_ids) == (local.processed_ids, local.skipped_ids)
        assert remote.failed_files == local.failed_files
        assert [_undated(r.record) for r in remote.results] == [_undated(r.record) for r in local.results]
        assert [(r.was_duplicate, r.skipped, r.duplicate_of) for r in remote.results] == \
            [(r.was_duplicate, r.skipped, r.duplicate_of) for r in local.results]
        assert sorted((p.path, p.status) for p in seen["remote"]) == sorted((p.path, p.status) for p in seen["local"])
        assert [p.done for p in seen["remote"]] == [1, 2, 3, 4, 5]
    outside = client.process_many(["/etc/hostname", str(root / P / "rocket.jpg")])
    assert outside.processed == 1 and outside.failed_files[0].path == "/etc/hostname"
    assert "outside the allowed roots" in outside.failed_files[0].reason
    with pytest.raises(ConfigurationError):
        client.process_many(str(root / P / "rocket.jpg"))


def test_process_an_upload(fresh: tuple[Extractor, Client, Path]) -> None:
    """Bytes, a binary file or a PIL image are uploaded, then processed like a server file."""
    _, client, root = fresh
    data = (root / P / "rocket.jpg").read_bytes()
    first = client.process(data)
    assert not first.skipped and first.record.content_hash == __import__("hashlib").sha256(data).hexdigest()
    assert Path(first.record.path).parent == root / "uploads"
    again = client.process(data)  # the name comes from the bytes: stored once, then unchanged
    assert again.record.id == first.record.id and again.was_duplicate
    with open(root / P / "coffee.jpg", "rb") as fh:
        named = client.process(fh, upload_dir="photos/incoming")
    assert named.record.path == str(root / "photos" / "incoming" / "coffee.jpg")
    with Image.open(root / P / "astronaut.jpg") as img:
        astronaut = img.convert("RGB")
    pil = client.process(astronaut, filename="astro.png")
    assert pil.record.filename == "astro.png" and pil.record.format == "PNG"
    with pytest.raises(RemoteError) as info:  # that name is taken and overwrite is off
        client.process(astronaut.rotate(90), filename="astro.png")
    assert info.value.error == "UploadExistsError" and info.value.status_code == 409
    replaced = client.process(astronaut.rotate(90), filename="astro.png", overwrite=True)
    assert replaced.record.id == pil.record.id and replaced.record.content_hash != pil.record.content_hash
    assert client.count() == 3


def test_process_directory_agrees_with_progress(fresh: tuple[Extractor, Client, Path]) -> None:
    ex, client, root = fresh
    local = ex.process_directory(root / P)
    seen: list[Progress] = []
    remote = client.process_directory(root / P, progress=seen.append, timeout=120, poll_interval=0.05)
    assert isinstance(remote, BatchReport)
    assert (remote.total_files, remote.processed, remote.skipped, remote.failed) == \
        (local.total_files, local.processed, local.skipped, local.failed)
    assert sorted(remote.processed_ids) == sorted(local.processed_ids)
    assert seen and seen[-1].done == seen[-1].total == local.total_files
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert [_undated(r) for r in client.list()] == [_undated(r) for r in ex.list()]
    # the second run skips everything, on both sides; wait=False gives the task to wait on
    task = client.process_directory(root / P, wait=False)
    assert isinstance(task, RemoteTask) and task.task_id and task.status in ("queued", "processing", "completed")
    again = client.wait(task, timeout=120, poll_interval=0.05)
    assert again.skipped == ex.process_directory(root / P).skipped == local.total_files
    assert sorted(again.skipped_ids) == sorted(local.processed_ids)
    assert client.task(task.task_id).finished


def test_deleting_files_within_folders_agrees(fresh: tuple[Extractor, Client, Path]) -> None:
    """``within`` narrows file deletions to folders (on the server: inside its roots): outside
    them both refuse with FileOutsideRootsError and keep file and record; inside, the file goes."""
    ex, client, root = fresh
    ex.process_directory(root / P)
    client.process_directory(P, timeout=120, poll_interval=0.05)
    (root / "other").mkdir()
    victim = ex.get_by_path(root / P / "rocket.jpg")
    assert victim is not None
    for api in (ex, client):
        with pytest.raises(FileOutsideRootsError):
            api.delete(victim.id, delete_file=True, within=[root / "other"])
        assert api.get(victim.id).id == victim.id  # the record stays too
    assert Path(victim.path).exists()
    assert client.delete(victim.id, delete_file=True, within=[root / P]).id == victim.id
    assert not Path(victim.path).exists()
    with pytest.raises(RecordNotFoundError):
        client.get(victim.id)
    ex.delete(victim.id)
    local = ex.remove_duplicates(threshold=0.9, dry_run=False, delete_files=True, within=[root / "other"])
    remote = client.remove_duplicates(threshold=0.9, dry_run=False, delete_files=True, within=[root / "other"])
    assert _close(local, remote)
    assert remote.failed_files and remote.left_ids and not remote.removed_ids and not remote.files_deleted
    assert all(Path(p).exists() for g in remote.groups for p in g.paths)


def test_delete_and_remove_duplicates_agree(fresh: tuple[Extractor, Client, Path]) -> None:
    ex, client, root = fresh
    ex.process_directory(root / P)
    client.process_directory(root / P, timeout=120, poll_interval=0.05)
    victim = ex.list(limit=1)[0].id
    assert _undated(client.delete(victim)) == _undated(ex.delete(victim))
    assert client.count() == ex.count()
    with pytest.raises(RecordNotFoundError):
        client.get(victim)
    local = ex.remove_duplicates(threshold=0.9, dry_run=False)
    remote = client.remove_duplicates(threshold=0.9, dry_run=False)
    assert local.removed_ids and _close(local, remote)
    assert [_undated(r) for r in client.list()] == [_undated(r) for r in ex.list()]


# -- the client itself --------------------------------------------------------------------------------


def test_async_client_agrees(pair: tuple[Extractor, Client, Path]) -> None:
    ex, client, root = pair

    async def scenario() -> tuple[Any, ...]:
        async with connect_async(client.url) as remote:
            hits = await remote.search("dark blue", limit=3)
            similar = await remote.search_image(root / P / "rocket.jpg", limit=3)
            records = await remote.list(limit=4)
            status = await remote.models.status()
            with pytest.raises(RecordNotFoundError):
                await remote.get("0" * 32)
            return hits, similar, records, status

    hits, similar, records, status = asyncio.run(scenario())
    _same_hits(ex.search("dark blue", limit=3), hits)
    _same_hits(ex.search_image(root / P / "rocket.jpg", limit=3), similar)
    assert records == ex.list(limit=4)
    assert status == ex.models.status()


def test_models_preload_reports_the_same_roles(pair: tuple[Extractor, Client, Path]) -> None:
    """The server's answer also carries the contract's model keys; the client returns the roles
    and the total, as the Extractor does."""
    ex, client, _ = pair
    remote = client.models.preload()
    assert remote.keys() == ex.models.preload().keys()
    assert "total" in remote and all(v >= 0 for v in remote.values())
    assert all(s.loaded for s in client.models.status().values())


def test_the_api_key_is_sent(tmp_path: Path, photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _root(tmp_path, photo_dir)
    with serving(make_app(tmp_path, root, api_key="s3cret")) as url:
        with connect(url) as anonymous, pytest.raises(RemoteError) as info:
            anonymous.count()
        assert info.value.status_code == 401 and info.value.error == "AuthenticationError"
        with connect(url, api_key="s3cret") as keyed:
            assert keyed.count() == 0
        monkeypatch.setenv("IMGCTX_SERVER_URL", url)
        monkeypatch.setenv("IMGCTX_API_KEY", "s3cret")
        with connect() as from_settings:  # both from the settings
            assert from_settings.url == url and from_settings.count() == 0
        assert "s3cret" not in repr(from_settings)


def test_upload_limits_and_vanished_files(tmp_path: Path, photo_dir: Path) -> None:
    """A query image over max_upload_bytes is refused (413) and nothing is kept; "more like this"
    for a record whose file is gone still answers, from the stored vector (as search_similar does)."""
    root = _root(tmp_path, photo_dir)
    with serving(make_app(tmp_path, root, max_upload_bytes=20_000)) as url, connect(url) as client:
        client.process_directory(P, timeout=120, poll_interval=0.05)
        with pytest.raises(RemoteError) as info:
            client.search_image(root / P / "chelsea.jpg")  # 35 kB
        assert info.value.status_code == 413 and info.value.error == "UploadTooLargeError"
        gone = client.list(limit=1)[0]
        Path(gone.path).unlink()
        hits = client.search_image(record_id=gone.id)
        assert hits and gone.id not in {h.record.id for h in hits}
        assert [h.record.id for h in hits] == [h.record.id for h in client.search_similar(gone.id)]
        with pytest.raises(RecordNotFoundError):
            client.search_image(record_id="0" * 32)


def test_an_unreachable_server_is_a_remote_error() -> None:
    with connect(f"http://127.0.0.1:{free_port()}", timeout=5) as client, pytest.raises(RemoteError) as info:
        client.count()
    assert info.value.status_code is None and "cannot reach" in str(info.value)


@pytest.mark.models
def test_real_models_agree(offline_index: Extractor, photo_dir: Path, tmp_path: Path) -> None:
    """The offline preset's real weights (EfficientNet-Lite0, all-MiniLM-L6-v2): text and image
    search, filters and comparisons agree through a live server on the same Extractor."""
    for module in ("torch", "efficientnet_lite_pytorch", "sentence_transformers"):
        pytest.importorskip(module)
    ex = offline_index
    chelsea, coffee = photo_dir / "chelsea.jpg", photo_dir / "coffee.jpg"
    with serving(make_app(tmp_path, photo_dir, extractor=ex)) as url, connect(url) as client:
        _same_hits(ex.search("a cat", limit=3), client.search("a cat", limit=3))
        _same_hits(ex.search("a cup of coffee", objects="cup", limit=3),
                   client.search("a cup of coffee", objects="cup", limit=3))
        local = ex.search_image(chelsea, limit=4)
        _same_hits(local, client.search_image(chelsea, limit=4))
        _same_hits(local, client.search_image(record_id=ex.get_by_path(str(chelsea)).id, limit=4))
        assert _close(ex.compare(chelsea, coffee), client.compare(chelsea, coffee))
        assert client.list(objects="cat") == ex.list(objects="cat") != []
