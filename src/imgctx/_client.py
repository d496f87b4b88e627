"""``imgctx.connect()``: the Extractor's API against a remote imgctx server, over httpx.

``Client`` (sync) and ``AsyncClient`` (``connect_async``) have the Extractor's method names,
arguments, return types and errors. Both drive the same I/O-free operations (``_remote.py``);
httpx is imported on first connect, so ``import imgctx`` stays light.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, overload

from imgctx import _remote as ops
from imgctx._duplicates import DEFAULT_THRESHOLD, REMOVE_THRESHOLD
from imgctx._errors import ImgctxError, MissingDependencyError, RemoteError
from imgctx._remote import Call, Op, RemoteTask, Sleep, error_from
from imgctx._types import (
    BatchReport,
    Comparison,
    DuplicateMatch,
    DuplicateReport,
    ImageRecord,
    ModelStatus,
    ProcessResult,
    Progress,
    RemovalReport,
    SearchHit,
)

T = TypeVar("T")
API_KEY_HEADER = "X-API-Key"
DEFAULT_TIMEOUT = 60.0
ProgressCallback = Callable[[Progress], None]


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("imgctx.connect()", "httpx", 'pip install "httpx>=0.27"') from None
    return httpx


def _settings_defaults(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The URL and key to use: the arguments, else the ``server_url`` and ``api_key`` settings."""
    if url is None or api_key is None:
        from imgctx._settings import Settings

        settings = Settings()
        if url is None:
            url = settings.server_url
        if api_key is None and settings.api_key is not None:
            api_key = settings.api_key.get_secret_value()
    if not url:
        from imgctx._errors import ConfigurationError

        raise ConfigurationError("connect() needs the server's URL (or the IMGCTX_SERVER_URL setting)")
    return url.rstrip("/"), api_key


def _server_prunes(prune: bool) -> None:
    """A server's indexing always keeps its index true to the disk (``Extractor`` defaults)."""
    if not prune:
        from imgctx._errors import ConfigurationError

        raise ConfigurationError("prune=False is not available with a server: its indexing always prunes")


def _answer(response: Any) -> Any:
    """The JSON body of a successful answer; the library's exception for an error."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        raise error_from(response.status_code, body, response.text)
    return response.json() if response.content else None


class _Base:
    def __init__(self, url: str | None, api_key: str | None, timeout: float | None,
                 transport: Any, headers: dict[str, str] | None, asynchronous: bool) -> None:
        httpx = _httpx()
        self.url, api_key = _settings_defaults(url, api_key)
        sent = {"User-Agent": "imgctx-client", **(headers or {})}
        if api_key is not None:
            sent[API_KEY_HEADER] = api_key
        factory = httpx.AsyncClient if asynchronous else httpx.Client
        self._http = factory(base_url=self.url, headers=sent, timeout=httpx.Timeout(timeout), transport=transport)
        self._transport_error = httpx.TransportError

    def _unreachable(self, exc: Exception) -> RemoteError:
        return RemoteError(f"cannot reach the imgctx server at {self.url}: {exc}", None, type(exc).__name__)

    @staticmethod
    def _request(call: Call) -> dict[str, Any]:
        return {"params": call.params, "json": call.json, "files": call.files, "data": call.data}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class RemoteModels:
    """``client.models``: the server's model load state and preloading."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def status(self) -> dict[str, ModelStatus]:
        """Which of the server's models are loaded, per role, without loading any."""
        return self._client._run(ops.models_status())

    def preload(self) -> dict[str, float]:
        """Load every model on the server now; seconds per role and the ``total``."""
        return self._client._run(ops.models_preload())


class Client(_Base):
    """An imgctx server, used like an ``Extractor`` (see ``imgctx.connect``).

    Paths given to ``process``, ``process_directory``, ``compare`` and ``find_duplicates`` name
    files on the server (inside its allowed roots); ``search_image`` uploads a local image, and
    ``process`` uploads bytes, a binary file or a PIL image.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float | None = DEFAULT_TIMEOUT,
                 *, transport: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(url, api_key, timeout, transport, headers, asynchronous=False)
        self.models = RemoteModels(self)

    def _run(self, op: Op[T]) -> T:
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    reply = None
                else:
                    error: ImgctxError | None = None
                    try:
                        reply = _answer(self._http.request(step.method, step.path, **self._request(step)))
                    except self._transport_error as exc:
                        error = self._unreachable(exc)
                    except ImgctxError as exc:
                        error = exc
                    if error is not None:  # raised where the operation waits: it may handle it
                        step = op.throw(error)
                        continue
                step = op.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def search(self, text: str, objects: Sequence[str] | str | None = None, limit: int = 10,
               min_score: float | None = None, offset: int = 0, **filters: Any) -> builtins.list[SearchHit]:
        """Images that match a text query, best first (``Extractor.search``); ``offset`` skips
        that many of the best hits (the next page); ``filters`` are the photo filters."""
        return self._run(ops.search(text, objects, limit, min_score, offset, filters))

    def search_image(self, image: Any = None, objects: Sequence[str] | str | None = None, limit: int = 10,
                     min_score: float | None = None, exclude_self: bool = True, offset: int = 0, *,
                     record_id: str | None = None, **filters: Any) -> builtins.list[SearchHit]:
        """Images similar to ``image`` (a local path, bytes, a binary file or a PIL image, uploaded)
        or to the stored image ``record_id``. ``exclude_self`` leaves out the record itself, or for
        an upload the stored images with the same bytes."""
        return self._run(ops.search_image(image, record_id, objects, limit, min_score, exclude_self, offset,
                                          filters))

    def search_similar(self, record_id: str, objects: Sequence[str] | str | None = None, limit: int = 10,
                       min_score: float | None = None, offset: int = 0, **filters: Any) -> builtins.list[SearchHit]:
        """Images similar to a stored one ("more like this"; ``Extractor.search_similar``)."""
        return self._run(ops.search_similar(record_id, objects, limit, min_score, offset, filters))

    def object_counts(self) -> dict[str, int]:
        """Every object tag in the store with its count, most common first."""
        return self._run(ops.object_counts())

    def get(self, record_id: str) -> ImageRecord:
        """The record with this id; RecordNotFoundError if there is none."""
        return self._run(ops.get(record_id))

    def get_by_path(self, path: str | os.PathLike[str]) -> ImageRecord | None:
        """The record of the file at ``path`` on the server, or None when it is not indexed."""
        return self._run(ops.get_by_path(path))

    def list(self, objects: Sequence[str] | str | None = None, limit: int = 100,
             offset: int = 0, **filters: Any) -> builtins.list[ImageRecord]:
        """Records in insertion order, optionally only those tagged with any of ``objects`` and
        passing the photo ``filters``."""
        return self._run(ops.list_records(objects, limit, offset, filters))

    def count(self, objects: Sequence[str] | str | None = None, **filters: Any) -> int:
        """How many records there are, optionally only those tagged with any of ``objects`` and
        passing the photo ``filters``."""
        return self._run(ops.count(objects, filters))

    def delete(self, record_id: str, delete_file: bool = False,
               within: Sequence[str | os.PathLike[str]] | None = None) -> ImageRecord:
        """Remove a record (and, with ``delete_file``, its file on the server, inside its allowed
        roots and, with ``within``, only inside those folders of the server); the removed record."""
        return self._run(ops.delete(record_id, delete_file, within))

    def process(self, path: str | os.PathLike[str] | Any, force: bool = False, *, filename: str | None = None,
                upload_dir: str | None = None, overwrite: bool = False) -> ProcessResult:
        """Index one image: ``path`` on the server, or bytes, a binary file or a PIL image, which
        is uploaded first (as ``filename`` in ``upload_dir``; without a name, one derived from the
        bytes, so the same image is stored once)."""
        return self._run(ops.process(path, force, filename, upload_dir, overwrite))

    def process_many(self, paths: Iterable[str | os.PathLike[str]], force: bool = False,
                     progress: ProgressCallback | None = None, prune: bool = True) -> BatchReport:
        """Index files on the server, one request each, in order; a file that cannot be used (or is
        outside the allowed roots) is reported in ``failed_files``, never raised. The server
        always prunes (``prune=False`` is a ConfigurationError)."""
        _server_prunes(prune)
        return self._run(ops.process_many(paths, force, progress))

    @overload
    def process_directory(self, path: str | os.PathLike[str], recursive: bool = ..., force: bool = ...,
                          progress: ProgressCallback | None = ..., prune: bool = ..., *,
                          wait: Literal[True] = ...,
                          timeout: float | None = ..., poll_interval: float = ...) -> BatchReport: ...

    @overload
    def process_directory(self, path: str | os.PathLike[str], recursive: bool = ..., force: bool = ...,
                          progress: ProgressCallback | None = ..., prune: bool = ..., *,
                          wait: Literal[False],
                          timeout: float | None = ..., poll_interval: float = ...) -> RemoteTask: ...

    def process_directory(self, path: str | os.PathLike[str], recursive: bool = False, force: bool = False,
                          progress: ProgressCallback | None = None, prune: bool = True, *, wait: bool = True,
                          timeout: float | None = None, poll_interval: float = 0.5) -> BatchReport | RemoteTask:
        """Index a folder on the server in a background task and wait for it (``progress`` gets
        the counts as the server reports them), or with ``wait=False`` return the task. The
        server always prunes (``prune=False`` is a ConfigurationError)."""
        _server_prunes(prune)
        if not wait:
            return self._run(ops.start_directory(path, recursive, force))
        return self._run(ops.process_directory(path, recursive, force, progress, timeout, poll_interval))

    def task(self, task_id: str) -> RemoteTask:
        """A background task's state."""
        return self._run(ops.task(task_id))

    def wait(self, task: RemoteTask | str, progress: ProgressCallback | None = None, timeout: float | None = None,
             poll_interval: float = 0.5) -> BatchReport:
        """Wait for a background task to end; its report, or RemoteError if it failed."""
        task_id = task.task_id if isinstance(task, RemoteTask) else task
        return self._run(ops.wait(task_id, progress, timeout, poll_interval))

    def find_duplicates(self, threshold: float = DEFAULT_THRESHOLD, directory: str | os.PathLike[str] | None = None,
                        recursive: bool = False, image: str | os.PathLike[str] | None = None) -> DuplicateReport:
        """Groups of duplicate images in the server's store, or in a folder on the server; with
        ``image`` (a file on the server), that image's duplicates."""
        return self._run(ops.find_duplicates(threshold, directory, recursive, image))

    def check_image(self, path: str | os.PathLike[str], threshold: float = DEFAULT_THRESHOLD,
                    limit: int = 50) -> builtins.list[DuplicateMatch]:
        """Stored images that duplicate the image file at ``path`` on the server, most similar first."""
        return self._run(ops.check_image(path, threshold, limit))

    def compare(self, a: str | os.PathLike[str], b: str | os.PathLike[str],
                threshold: float = DEFAULT_THRESHOLD) -> Comparison:
        """Every metric relating two image files on the server."""
        return self._run(ops.compare(a, b, threshold))

    def remove_duplicates(self, threshold: float = REMOVE_THRESHOLD, dry_run: bool = True, keep: str = "first",
                          delete_files: bool = False,
                          within: Sequence[str | os.PathLike[str]] | None = None) -> RemovalReport:
        """Remove all but one image of every duplicate group in the server's store (dry run by
        default); files only inside the server's allowed roots and, with ``within``, those folders."""
        return self._run(ops.remove_duplicates(threshold, dry_run, keep, delete_files, within))

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRemoteModels:
    """``client.models`` of an ``AsyncClient``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def status(self) -> dict[str, ModelStatus]:
        return await self._client._run(ops.models_status())

    async def preload(self) -> dict[str, float]:
        return await self._client._run(ops.models_preload())


class AsyncClient(_Base):
    """``Client`` with coroutine methods (``connect_async``); progress callbacks stay plain functions."""

    def __init__(self, url: str | None = None, api_key: str | None = None, timeout: float | None = DEFAULT_TIMEOUT,
                 *, transport: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(url, api_key, timeout, transport, headers, asynchronous=True)
        self.models = AsyncRemoteModels(self)

    async def _run(self, op: Op[T]) -> T:
        import anyio

        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                    reply = None
                else:
                    error: ImgctxError | None = None
                    try:
                        reply = _answer(await self._http.request(step.method, step.path, **self._request(step)))
                    except self._transport_error as exc:
                        error = self._unreachable(exc)
                    except ImgctxError as exc:
                        error = exc
                    if error is not None:  # raised where the operation waits: it may handle it
                        step = op.throw(error)
                        continue
                step = op.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def search(self, text: str, objects: Sequence[str] | str | None = None, limit: int = 10,
                     min_score: float | None = None, offset: int = 0, **filters: Any) -> builtins.list[SearchHit]:
        return await self._run(ops.search(text, objects, limit, min_score, offset, filters))

    async def search_image(self, image: Any = None, objects: Sequence[str] | str | None = None, limit: int = 10,
                           min_score: float | None = None, exclude_self: bool = True, offset: int = 0, *,
                           record_id: str | None = None, **filters: Any) -> builtins.list[SearchHit]:
        return await self._run(ops.search_image(image, record_id, objects, limit, min_score, exclude_self,
                                                offset, filters))

    async def search_similar(self, record_id: str, objects: Sequence[str] | str | None = None, limit: int = 10,
                             min_score: float | None = None, offset: int = 0,
                             **filters: Any) -> builtins.list[SearchHit]:
        return await self._run(ops.search_similar(record_id, objects, limit, min_score, offset, filters))

    async def object_counts(self) -> dict[str, int]:
        return await self._run(ops.object_counts())

    async def get(self, record_id: str) -> ImageRecord:
        return await self._run(ops.get(record_id))

    async def get_by_path(self, path: str | os.PathLike[str]) -> ImageRecord | None:
        return await self._run(ops.get_by_path(path))

    async def list(self, objects: Sequence[str] | str | None = None, limit: int = 100,
                   offset: int = 0, **filters: Any) -> builtins.list[ImageRecord]:
        return await self._run(ops.list_records(objects, limit, offset, filters))

    async def count(self, objects: Sequence[str] | str | None = None, **filters: Any) -> int:
        return await self._run(ops.count(objects, filters))

    async def delete(self, record_id: str, delete_file: bool = False,
                     within: Sequence[str | os.PathLike[str]] | None = None) -> ImageRecord:
        return await self._run(ops.delete(record_id, delete_file, within))

    async def process(self, path: str | os.PathLike[str] | Any, force: bool = False, *,
                      filename: str | None = None, upload_dir: str | None = None,
                      overwrite: bool = False) -> ProcessResult:
        return await self._run(ops.process(path, force, filename, upload_dir, overwrite))

    async def process_many(self, paths: Iterable[str | os.PathLike[str]], force: bool = False,
                           progress: ProgressCallback | None = None, prune: bool = True) -> BatchReport:
        _server_prunes(prune)
        return await self._run(ops.process_many(paths, force, progress))

    @overload
    async def process_directory(self, path: str | os.PathLike[str], recursive: bool = ..., force: bool = ...,
                                progress: ProgressCallback | None = ..., prune: bool = ..., *,
                                wait: Literal[True] = ...,
                                timeout: float | None = ..., poll_interval: float = ...) -> BatchReport: ...

    @overload
    async def process_directory(self, path: str | os.PathLike[str], recursive: bool = ..., force: bool = ...,
                                progress: ProgressCallback | None = ..., prune: bool = ..., *,
                                wait: Literal[False],
                                timeout: float | None = ..., poll_interval: float = ...) -> RemoteTask: ...

    async def process_directory(self, path: str | os.PathLike[str], recursive: bool = False, force: bool = False,
                                progress: ProgressCallback | None = None, prune: bool = True, *, wait: bool = True,
                                timeout: float | None = None,
                                poll_interval: float = 0.5) -> BatchReport | RemoteTask:
        _server_prunes(prune)
        if not wait:
            return await self._run(ops.start_directory(path, recursive, force))
        return await self._run(ops.process_directory(path, recursive, force, progress, timeout, poll_interval))

    async def task(self, task_id: str) -> RemoteTask:
        return await self._run(ops.task(task_id))

    async def wait(self, task: RemoteTask | str, progress: ProgressCallback | None = None,
                   timeout: float | None = None, poll_interval: float = 0.5) -> BatchReport:
        task_id = task.task_id if isinstance(task, RemoteTask) else task
        return await self._run(ops.wait(task_id, progress, timeout, poll_interval))

    async def find_duplicates(self, threshold: float = DEFAULT_THRESHOLD,
                              directory: str | os.PathLike[str] | None = None, recursive: bool = False,
                              image: str | os.PathLike[str] | None = None) -> DuplicateReport:
        return await self._run(ops.find_duplicates(threshold, directory, recursive, image))

    async def check_image(self, path: str | os.PathLike[str], threshold: float = DEFAULT_THRESHOLD,
                          limit: int = 50) -> builtins.list[DuplicateMatch]:
        return await self._run(ops.check_image(path, threshold, limit))

    async def compare(self, a: str | os.PathLike[str], b: str | os.PathLike[str],
                      threshold: float = DEFAULT_THRESHOLD) -> Comparison:
        return await self._run(ops.compare(a, b, threshold))

    async def remove_duplicates(self, threshold: float = REMOVE_THRESHOLD, dry_run: bool = True,
                                keep: str = "first", delete_files: bool = False,
                                within: Sequence[str | os.PathLike[str]] | None = None) -> RemovalReport:
        return await self._run(ops.remove_duplicates(threshold, dry_run, keep, delete_files, within))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def connect(url: str | None = None, api_key: str | None = None, timeout: float | None = DEFAULT_TIMEOUT, *,
            transport: Any = None, headers: dict[str, str] | None = None) -> Client:
    """A :class:`Client` for the imgctx server at ``url`` (default: the ``server_url`` setting),
    sending ``api_key`` (default: the ``api_key`` setting) as ``X-API-Key``. ``timeout`` is
    per request, in seconds; ``transport`` is an httpx transport (``httpx.MockTransport`` in
    tests). Needs only the core install; use it as a context manager or call ``close()``."""
    return Client(url, api_key, timeout, transport=transport, headers=headers)


def connect_async(url: str | None = None, api_key: str | None = None, timeout: float | None = DEFAULT_TIMEOUT, *,
                  transport: Any = None, headers: dict[str, str] | None = None) -> AsyncClient:
    """``connect`` for asyncio (or trio): an :class:`AsyncClient` whose methods are coroutines."""
    return AsyncClient(url, api_key, timeout, transport=transport, headers=headers)
