"""The client with only the core install (httpx, no server): its signatures mirror the
Extractor's, and the server's error envelope comes back as the library's exceptions."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

import imgctx  # noqa: E402
from imgctx import (  # noqa: E402
    Client,
    ConfigurationError,
    Extractor,
    ImageNotFoundError,
    MissingDependencyError,
    RecordNotFoundError,
    RemoteError,
    connect,
    connect_async,
)


def _envelope(status: int, error: str, message: str, **details: Any) -> httpx.MockTransport:
    body = {"success": False, "error": error, "message": message,
            "details": {"status_code": status, **details}, "timestamp": "2026-01-01T00:00:00+00:00"}
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


def test_library_errors_come_back_as_their_classes() -> None:
    with connect("http://imgctx.test", transport=_envelope(404, "RecordNotFoundError", "no image with id 'abc'",
                                                           image_id="abc")) as client:
        with pytest.raises(RecordNotFoundError) as info:
            client.get("abc")
    assert info.value.record_id == "abc" and str(info.value) == "no image with id 'abc'"
    with connect("http://imgctx.test", transport=_envelope(404, "ImageNotFoundError", "/srv/a.jpg: no such file",
                                                           path="/srv/a.jpg")) as client:
        with pytest.raises(ImageNotFoundError) as found:
            client.compare("/srv/a.jpg", "/srv/b.jpg")
    assert found.value.path == "/srv/a.jpg" and found.value.reason == "no such file"
    with connect("http://imgctx.test", transport=_envelope(422, "ValidationError", "query.limit: too big")) as client:
        with pytest.raises(ConfigurationError, match="too big"):
            client.search("cat", limit=5000)


def test_server_only_errors_are_remote_errors() -> None:
    transport = _envelope(403, "PathNotAllowedError", "image_path is outside the allowed roots: /etc",
                          field="image_path")
    with connect("http://imgctx.test", transport=transport) as client, pytest.raises(RemoteError) as info:
        client.process("/etc/passwd")
    assert (info.value.status_code, info.value.error) == (403, "PathNotAllowedError")
    assert info.value.details["field"] == "image_path" and "outside" in str(info.value)


def test_requests_carry_the_key_and_the_arguments() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"count": 7, "objects": ["cat", "dog"]})

    with connect("http://imgctx.test/", api_key="k", transport=httpx.MockTransport(answer)) as client:
        assert client.count(objects=["cat", "dog"]) == 7
    assert seen[0].headers["X-API-Key"] == "k"
    assert seen[0].url.path == "/api/v1/records/count" and seen[0].url.params["objects"] == "cat,dog"


def test_the_async_client_maps_errors_too() -> None:
    async def scenario() -> None:
        transport = _envelope(404, "RecordNotFoundError", "no image with id 'x'", image_id="x")
        async with connect_async("http://imgctx.test", transport=transport) as client:
            with pytest.raises(RecordNotFoundError):
                await client.get("x")

    asyncio.run(scenario())


def test_search_image_takes_an_image_or_a_record_id() -> None:
    never = httpx.MockTransport(lambda request: pytest.fail("nothing should be sent"))
    with connect("http://imgctx.test", transport=never) as client:
        with pytest.raises(ConfigurationError):
            client.search_image()
        with pytest.raises(ConfigurationError):
            client.search_image(b"...", record_id="abc")
        with pytest.raises(ConfigurationError):
            client.search_image(12345)


def test_process_directory_reports_progress_from_the_task() -> None:
    """The task is polled; each new count reaches ``progress``, the last one done == total."""
    polls = iter([("processing", "Processing image 0 of 3", None), ("processing", "Processing image 2 of 3", None),
                  ("completed", "Directory processed: 3 images processed",
                   {"total_files": 3, "processed": 3, "skipped": 0, "failed": 0, "processed_ids": ["a", "b", "c"],
                    "skipped_ids": [], "failed_files": [], "failures": [], "processing_time": 0.5,
                    "message": "done", "success": True})])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert json.loads(request.content) == {"directory_path": "photos", "recursive": True,
                                                   "force_reprocess": False}
            return httpx.Response(200, json={"task_id": "t1", "status": "queued", "message": "queued"})
        status, message, result = next(polls)
        return httpx.Response(200, json={"task_id": "t1", "status": status, "progress": 50.0, "message": message,
                                         "result": result, "error": None, "created_at": "c", "updated_at": "u",
                                         "directory_path": "/srv/photos"})

    seen: list[imgctx.Progress] = []
    with connect("http://imgctx.test", transport=httpx.MockTransport(answer)) as client:
        report = client.process_directory("photos", recursive=True, progress=seen.append, poll_interval=0.001)
    assert report.processed_ids == ("a", "b", "c") and report.results == ()
    assert [(p.done, p.total) for p in seen] == [(0, 3), (2, 3), (3, 3)]
    assert seen[0].path == "/srv/photos"


def test_a_failed_task_is_a_remote_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"task_id": "t1", "status": "failed", "progress": 10.0, "message": "Failed",
                                         "result": None, "error": "disk full", "created_at": "c",
                                         "updated_at": "u", "directory_path": "/srv/photos"})

    with connect("http://imgctx.test", transport=httpx.MockTransport(answer)) as client, \
            pytest.raises(RemoteError) as info:
        client.wait("t1", poll_interval=0.001)
    assert info.value.error == "TaskFailed" and "disk full" in str(info.value)


def test_connect_needs_a_url() -> None:
    with pytest.raises(ConfigurationError, match="IMGCTX_SERVER_URL"):
        connect()


def test_missing_httpx_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependencyError) as info:
        connect("http://127.0.0.1:1")
    assert 'pip install "httpx' in str(info.value)


def test_an_answer_that_is_not_the_envelope() -> None:
    import httpx

    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>Bad gateway</html>"))
    with connect("http://imgctx.test", transport=transport) as client, pytest.raises(RemoteError) as info:
        client.count()
    assert info.value.status_code == 502 and "Bad gateway" in str(info.value)


@pytest.mark.parametrize("cls", [Client, imgctx.AsyncClient])
def test_methods_mirror_the_extractor(cls: type) -> None:
    """Same names, same parameters in the same order, same defaults (extra ones come after); the
    photo ``**filters`` of search/list/count are taken by both."""
    for name in ("search", "search_image", "search_similar", "object_counts", "get", "get_by_path", "list",
                 "count", "delete", "process", "process_many", "process_directory", "find_duplicates",
                 "check_image", "compare", "remove_duplicates", "close"):
        local_all = list(inspect.signature(getattr(Extractor, name)).parameters.values())
        remote_all = list(inspect.signature(getattr(cls, name)).parameters.values())
        var_kw = [p.name for p in local_all if p.kind is p.VAR_KEYWORD]
        assert [p.name for p in remote_all if p.kind is p.VAR_KEYWORD] == var_kw, name
        local = [p for p in local_all if p.kind is not p.VAR_KEYWORD]
        remote = [p for p in remote_all if p.kind is not p.VAR_KEYWORD]
        assert [p.name for p in remote[:len(local)]] == [p.name for p in local], name
        for mine, theirs in zip(remote, local, strict=False):
            if theirs.default is not inspect.Parameter.empty:
                assert mine.default == theirs.default, f"{name}({mine.name})"
        assert all(p.kind is p.KEYWORD_ONLY or p.default is not p.empty for p in remote[len(local):]), name




def test_every_extractor_method_is_remote() -> None:
    """One API: a public method added to the Extractor needs its remote twin (or a reason in
    docs/client.md and an exception here)."""
    def public(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if not n.startswith("_") and callable(v) and not isinstance(v, property)}

    # local only, for the reasons docs/client.md gives ("What is not remote")
    local_only = {"prune", "removed_duplicates", "restore_duplicates", "search_mixed"}
    assert public(Extractor) - local_only <= public(Client)
    assert public(Extractor) - local_only <= public(imgctx.AsyncClient)
    assert {"status", "preload"} <= public(imgctx._client.RemoteModels)
