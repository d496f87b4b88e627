"""What ``imgctx.connect()`` sends and how it reads the answers, without any I/O.

Each remote method is a generator (an *operation*): it yields the HTTP requests it needs
(:class:`Call`) and pauses (:class:`Sleep`), receives each answer's JSON body, and returns the
library's own value types. The sync and the async client (``_client.py``) only drive these
generators, so the two cannot drift apart. Server errors come back as the library's exception
classes (:func:`error_from`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from imgctx import _errors as errors
from imgctx._errors import ConfigurationError, ImageError, ImageNotFoundError, ImgctxError, RemoteError
from imgctx._filters import filter_params
from imgctx._types import (
    BatchReport,
    Comparison,
    DuplicateGroup,
    DuplicateMatch,
    DuplicateReport,
    FailedFile,
    ImageRecord,
    ModelStatus,
    PhotoInfo,
    ProcessResult,
    Progress,
    RemovalReport,
    SearchHit,
    Tag,
)

T = TypeVar("T")

#: The largest page the server's list route answers; ``list`` pages through larger limits.
PAGE = 1000
#: More tags than any store holds: ``object_counts`` asks for all of them.
OBJECT_LIMIT = 1_000_000
API = "/api/v1"


@dataclass(frozen=True)
class Call:
    """One HTTP request; the operation receives the answer's JSON body."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


Op = Generator["Call | Sleep", Any, T]


@dataclass(frozen=True)
class RemoteTask:
    """A background directory task on a server (``process_directory(..., wait=False)``).

    ``progress`` is the percentage done, ``message`` the server's ("Processing image 3 of 6"),
    ``report`` the result once ``status`` is ``completed``.
    """

    task_id: str
    status: str
    progress: float
    message: str
    created_at: str
    updated_at: str
    directory_path: str | None = None
    error: str | None = None
    report: BatchReport | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "interrupted")


# -- errors --------------------------------------------------------------------------------------

#: Library errors a server reports by class name (the envelope's ``error``).
LIBRARY_ERRORS: dict[str, type[ImgctxError]] = {
    name: cls for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, ImgctxError) and cls is not RemoteError
}


def error_from(status_code: int, body: Any, text: str = "") -> ImgctxError:
    """The exception for an error answer: the library's class when the envelope names one
    (``ValidationError``, the server's check of the arguments, is a ``ConfigurationError``),
    else :class:`RemoteError` carrying the server's name, status code and details."""
    if not isinstance(body, dict) or "error" not in body:
        snippet = " ".join(text.split())[:200]
        return RemoteError(f"HTTP {status_code}: {snippet or 'no error details'}", status_code)
    name = str(body.get("error"))
    message = str(body.get("message") or name)
    found = body.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    if name == "ValidationError":
        return ConfigurationError(message)
    cls = LIBRARY_ERRORS.get(name)
    if cls is None:
        return RemoteError(message, status_code, name, details)
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    if isinstance(exc, ImageError):
        path = details.get("path")
        exc.path = str(path) if path is not None else None
        exc.reason = message.removeprefix(f"{exc.path}: ") if exc.path else message
    elif isinstance(exc, errors.RecordNotFoundError):
        exc.record_id = str(details.get("image_id", ""))
    elif isinstance(exc, errors.MissingDependencyError):  # the server lacks it: its message says what
        exc.what, exc.extra, exc.command = message, "", ""
    elif isinstance(exc, errors.PluginNotFoundError):
        exc.role, exc.name, exc.known = "", "", []
    elif isinstance(exc, errors.PluginCollisionError):
        exc.role, exc.name = "", ""
    return exc


# -- values --------------------------------------------------------------------------------------


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Query or form values without the unset ones; booleans as ``true``/``false``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def objects_param(objects: Sequence[str] | str | None) -> str | None:
    """The ``objects`` filter as the server takes it: comma-separated."""
    if objects is None or isinstance(objects, str):
        return objects
    return ",".join(str(o) for o in objects)


def _path(value: str | os.PathLike[str]) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigurationError(f"a path on the server is a str or os.PathLike, not {type(value).__name__}")
    return os.fspath(value)


def record_from(d: dict[str, Any]) -> ImageRecord:
    return ImageRecord(
        id=d["id"], path=d["path"], filename=d["filename"], size=(int(d["size"][0]), int(d["size"][1])),
        file_size=d["file_size"], format=d["format"], caption=d["caption"], objects=tuple(d["objects"]),
        content_hash=d["content_hash"], phash=d["phash"], dhash=d["dhash"],
        created_at=datetime.fromisoformat(d["created_at"]), updated_at=datetime.fromisoformat(d["updated_at"]),
        mtime_ns=d["mtime_ns"], orient_hashes=d.get("orient_hashes", ""),
        tags=tuple(Tag(t["label"], t["score"], t.get("coarse", False), t.get("confident", True)) for t in d["tags"]),
        photo=photo_from(d.get("photo")), text=d.get("text") or "", colors=tuple(d.get("colors") or ()),
        people=d.get("people"),
    )


def photo_from(d: dict[str, Any] | None) -> PhotoInfo | None:
    """The record's EXIF facts and place (the server's ``camera`` and ``place`` are derived)."""
    if d is None:
        return None
    known = {f.name for f in fields(PhotoInfo)} - {"taken_at"}
    taken = d.get("taken_at")
    return PhotoInfo(taken_at=datetime.fromisoformat(taken) if taken else None,
                     **{k: v for k, v in d.items() if k in known})


def hit_from(d: dict[str, Any]) -> SearchHit:
    return SearchHit(record_from(d["record"]), d["score"], dict(d.get("scores") or {}))


def _failures(items: list[dict[str, Any]]) -> tuple[FailedFile, ...]:
    return tuple(FailedFile(f["path"], f["reason"]) for f in items)


def batch_from(d: dict[str, Any]) -> BatchReport:
    return BatchReport(
        total_files=d["total_files"], processed=d["processed"], skipped=d["skipped"], failed=d["failed"],
        processed_ids=tuple(d["processed_ids"]), skipped_ids=tuple(d.get("skipped_ids") or ()),
        failed_files=_failures(d.get("failures") or []), processing_time=d["processing_time"],
    )


def task_from(d: dict[str, Any]) -> RemoteTask:
    result = d.get("result")
    return RemoteTask(
        task_id=d["task_id"], status=d["status"], progress=d["progress"], message=d["message"],
        created_at=d["created_at"], updated_at=d["updated_at"], directory_path=d.get("directory_path"),
        error=d.get("error"), report=batch_from(result) if result else None,
    )


def group_from(d: dict[str, Any]) -> DuplicateGroup:
    return DuplicateGroup(
        representative_id=d["representative_id"], duplicate_ids=tuple(d["duplicate_ids"]),
        similarity_scores=tuple(d["similarity_scores"]), paths=tuple(d["paths"]), exact=tuple(d.get("exact") or ()),
    )


def comparison_from(d: dict[str, Any]) -> Comparison:
    return Comparison(
        similarity=d["similarity"], is_duplicate=d["is_duplicate"], threshold=d["threshold"], exact=d["exact"],
        phash_distance=d["phash_distance"], dhash_distance=d["dhash_distance"],
        hash_similarity=d["hash_similarity"], embedding_cosine=d["embedding_cosine"],
        embedding_similarity=d["embedding_similarity"], reason=d.get("reason", ""),
        orientation=d.get("orientation", "upright"), turned_hash_distance=d.get("turned_hash_distance"),
        geometric_inliers=d.get("geometric_inliers"), geometric_contained=d.get("geometric_contained"),
        geometric_overlap=d.get("geometric_overlap"),
    )


# -- uploads -------------------------------------------------------------------------------------


def content_name(data: bytes) -> str:
    """An upload's name derived from its bytes (the server adds the suffix of the format)."""
    return f"upload-{hashlib.sha256(data).hexdigest()[:16]}"


def upload_bytes(image: Any, what: str) -> tuple[str | None, bytes]:
    """A local image as (its own file name or None, bytes): a path (read here), bytes, a binary
    file or a PIL image (sent as PNG, losslessly)."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            return path.name, path.read_bytes()
        except FileNotFoundError:
            raise ImageNotFoundError(path, "no such file") from None
        except IsADirectoryError:
            raise ImageNotFoundError(path, "is a directory, not a file") from None
        except OSError as exc:
            raise ImageError(path, f"cannot read: {exc.strerror or exc}") from None
    if isinstance(image, (bytes, bytearray, memoryview)):
        return None, bytes(image)
    if hasattr(image, "read"):
        data = image.read()
        if not isinstance(data, bytes):
            raise ConfigurationError(f"{what}: the file must be opened in binary mode")
        return os.path.basename(str(getattr(image, "name", "") or "")) or None, data
    try:
        from PIL.Image import Image as PILImage
    except ImportError:  # pragma: no cover - pillow is a core dependency
        PILImage = None  # type: ignore[assignment,misc]
    if PILImage is not None and isinstance(image, PILImage):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return None, buf.getvalue()
    raise ConfigurationError(f"{what} takes a path, bytes, a binary file or a PIL image, not {type(image).__name__}")


# -- operations ----------------------------------------------------------------------------------


def search(text: str, objects: Sequence[str] | str | None, limit: int, min_score: float | None,
           offset: int = 0, filters: dict[str, Any] | None = None) -> Op[list[SearchHit]]:
    if not isinstance(text, str):
        raise ConfigurationError(f"the search text must be a string, not {type(text).__name__}")
    params = _clean({"query": text, "objects": objects_param(objects), "limit": limit, "min_score": min_score,
                     "offset": offset or None, **filter_params(filters or {})})
    data = yield Call("GET", f"{API}/search", params=params)
    return [hit_from(d) for d in data]


def search_image(image: Any, record_id: str | None, objects: Sequence[str] | str | None, limit: int,
                 min_score: float | None, exclude_self: bool, offset: int = 0,
                 filters: dict[str, Any] | None = None) -> Op[list[SearchHit]]:
    if (image is None) == (record_id is None):
        raise ConfigurationError("search_image takes an image or a record_id (one of them)")
    where = _clean(filter_params(filters or {}))
    if record_id is not None:
        params = _clean({"objects": objects_param(objects), "limit": limit, "min_score": min_score,
                         "exclude_self": exclude_self, "offset": offset or None, **where})
        data = yield Call("GET", f"{API}/search/similar/{quote(record_id, safe='')}", params=params)
    else:
        name, body = upload_bytes(image, "search_image")
        form = _clean({"objects": objects_param(objects), "limit": limit, "min_score": min_score,
                       "exclude_self": exclude_self, "offset": offset or None})
        data = yield Call("POST", f"{API}/search/upload", params=where or None,
                          files={"file": (name or "query", body, "application/octet-stream")},
                          data={k: str(v) for k, v in form.items()})
    return [hit_from(d) for d in data]


def search_similar(record_id: str, objects: Sequence[str] | str | None, limit: int, min_score: float | None,
                   offset: int = 0, filters: dict[str, Any] | None = None) -> Op[list[SearchHit]]:
    params = _clean({"objects": objects_param(objects), "limit": limit, "min_score": min_score,
                     "exclude_self": True, "offset": offset or None, **filter_params(filters or {})})
    data = yield Call("GET", f"{API}/search/similar/{quote(record_id, safe='')}", params=params)
    return [hit_from(d) for d in data]


def object_counts() -> Op[dict[str, int]]:
    data = yield Call("GET", f"{API}/objects", params={"limit": OBJECT_LIMIT})
    return {d["label"]: int(d["count"]) for d in data}


def get(record_id: str) -> Op[ImageRecord]:
    data = yield Call("GET", f"{API}/records/{quote(str(record_id), safe='')}")
    return record_from(data)


def list_records(objects: Sequence[str] | str | None, limit: int, offset: int,
                 filters: dict[str, Any] | None = None) -> Op[list[ImageRecord]]:
    if limit < 0 or offset < 0:
        raise ConfigurationError("limit and offset must not be negative")
    where = filter_params(filters or {})
    out: list[ImageRecord] = []
    while True:
        want = min(PAGE, limit - len(out))
        params = _clean({"objects": objects_param(objects), "limit": want, "offset": offset + len(out), **where})
        page = yield Call("GET", f"{API}/records", params=params)
        out.extend(record_from(d) for d in page["records"])
        if want == 0 or len(page["records"]) < want or len(out) >= limit:
            return out


def get_by_path(path: str | os.PathLike[str]) -> Op[ImageRecord | None]:
    data = yield Call("GET", f"{API}/records/by-path", params={"path": _path(path)})
    return record_from(data) if data is not None else None


def check_image(path: str | os.PathLike[str], threshold: float, limit: int) -> Op[list[DuplicateMatch]]:
    params = {"image_path": _path(path), "similarity_threshold": threshold, "limit": limit}
    data = yield Call("GET", f"{API}/records/duplicates-of", params=params)
    return [DuplicateMatch(record_from(m["record"]), comparison_from(m["comparison"])) for m in data]


def count(objects: Sequence[str] | str | None, filters: dict[str, Any] | None = None) -> Op[int]:
    params = _clean({"objects": objects_param(objects), **filter_params(filters or {})})
    data = yield Call("GET", f"{API}/records/count", params=params)
    return int(data["count"])


def _within(within: Sequence[str | os.PathLike[str]] | None) -> dict[str, Any]:
    """``within`` as a query parameter, repeated once per folder (folders on the server)."""
    if within is None:
        return {}
    if isinstance(within, (str, os.PathLike)):
        raise ConfigurationError("within takes a list of folders")
    return {"within": [_path(w) for w in within]}


def delete(record_id: str, delete_file: bool,
           within: Sequence[str | os.PathLike[str]] | None = None) -> Op[ImageRecord]:
    record = yield from get(record_id)
    params = {**_clean({"delete_file": delete_file}), **_within(within)}
    yield Call("DELETE", f"{API}/images/{quote(record_id, safe='')}", params=params)
    return record


def _process_path(path: str, force: bool) -> Op[ProcessResult]:
    data = yield Call("POST", f"{API}/images/process", json={"image_path": path, "force_reprocess": force})
    record = yield from get(data["image_id"])
    return ProcessResult(record=record, was_duplicate=data["was_duplicate"], skipped=data["skipped"],
                         processing_time=data["processing_time"], duplicate_of=data.get("duplicate_of"))


#: Refusals of one file that ``process_many`` reports in ``failed_files`` instead of raising, as
#: the Extractor does for an ImageError: a path outside the allowed roots, or one that cannot be
#: resolved.
PER_FILE_REFUSALS = {"PathNotAllowedError", "BadRequestError"}


def process_many(paths: Any, force: bool, progress: Callable[[Progress], None] | None) -> Op[BatchReport]:
    """One ``images/process`` request per file (the server has no batch endpoint), each file once,
    in order; a file that cannot be used is reported, as the Extractor reports it."""
    if isinstance(paths, (str, os.PathLike)):
        raise ConfigurationError("process_many takes a list of paths; use process() for one file")
    items = list(dict.fromkeys(_path(p) for p in paths))
    start = time.perf_counter()
    results: list[ProcessResult] = []
    failed: list[FailedFile] = []
    for done, path in enumerate(items, 1):
        try:
            result = yield from _process_path(path, force)
        except ImageError as exc:
            failed.append(FailedFile(exc.path or path, exc.reason))
            where, status = exc.path or path, "failed"
        except RemoteError as exc:
            if exc.error not in PER_FILE_REFUSALS:
                raise
            failed.append(FailedFile(path, exc.message))
            where, status = path, "failed"
        else:
            results.append(result)
            where, status = result.record.path, "skipped" if result.skipped else "processed"
        if progress is not None:
            progress(Progress(done, len(items), where, status))
    processed = tuple(r.record.id for r in results if not r.skipped)
    skipped = tuple(r.record.id for r in results if r.skipped)
    return BatchReport(
        total_files=len(items), processed=len(processed), skipped=len(skipped), failed=len(failed),
        processed_ids=processed, skipped_ids=skipped, failed_files=tuple(failed),
        processing_time=time.perf_counter() - start, results=tuple(results),
    )


def process(image: Any, force: bool, filename: str | None, upload_dir: str | None,
            overwrite: bool) -> Op[ProcessResult]:
    """A str or path names a file on the server; anything else is uploaded first, then processed."""
    if isinstance(image, (str, os.PathLike)):
        return (yield from _process_path(_path(image), force))
    if image is None:
        raise ConfigurationError("process takes a path on the server, or bytes, a binary file or a PIL image")
    own_name, body = upload_bytes(image, "process")
    name = filename or own_name
    # without a name, one from the bytes: storing the same image again replaces it with itself
    form = _clean({"process_immediately": False, "upload_dir": upload_dir,
                   "overwrite": overwrite if name is not None else True})
    uploaded = yield Call("POST", f"{API}/images/upload",
                          files={"file": (name or content_name(body), body, "application/octet-stream")},
                          data={k: str(v) for k, v in form.items()})
    return (yield from _process_path(uploaded["file_path"], force))


def task(task_id: str) -> Op[RemoteTask]:
    data = yield Call("GET", f"{API}/directories/task/{quote(task_id, safe='')}")
    return task_from(data)


_COUNTS = re.compile(r"(\d+) of (\d+)")


def wait(task_id: str, progress: Callable[[Progress], None] | None, timeout: float | None,
         poll_interval: float) -> Op[BatchReport]:
    """Poll a background task until it ends; ``progress`` gets each new count the server reports."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = min(0.05, poll_interval)
    reported = -1
    while True:
        current = yield from task(task_id)
        found = _COUNTS.search(current.message)
        if progress is not None and found and int(found.group(1)) != reported and current.status == "processing":
            reported = int(found.group(1))
            progress(Progress(reported, int(found.group(2)), current.directory_path or "", "processing"))
        if current.status == "completed" and current.report is not None:
            total = current.report.total_files
            if progress is not None and reported != total:
                progress(Progress(total, total, current.directory_path or "", "processing"))
            return current.report
        if current.finished:
            raise RemoteError(current.error or current.message, None, f"Task{current.status.capitalize()}",
                              {"task_id": task_id, "status": current.status})
        if deadline is not None and time.monotonic() >= deadline:
            raise RemoteError(f"task {task_id} did not finish within {timeout}s; it goes on on the server",
                              None, "TaskTimeout", {"task_id": task_id})
        yield Sleep(delay)
        delay = min(poll_interval, delay * 1.5)


def _submit(path: str | os.PathLike[str], recursive: bool, force: bool) -> Op[str]:
    body = {"directory_path": _path(path), "recursive": recursive, "force_reprocess": force}
    created = yield Call("POST", f"{API}/directories/process-async", json=body)
    return str(created["task_id"])


def start_directory(path: str | os.PathLike[str], recursive: bool, force: bool) -> Op[RemoteTask]:
    task_id = yield from _submit(path, recursive, force)
    return (yield from task(task_id))


def process_directory(path: str | os.PathLike[str], recursive: bool, force: bool,
                      progress: Callable[[Progress], None] | None, timeout: float | None,
                      poll_interval: float) -> Op[BatchReport]:
    task_id = yield from _submit(path, recursive, force)
    return (yield from wait(task_id, progress, timeout, poll_interval))


def find_duplicates(threshold: float, directory: str | os.PathLike[str] | None, recursive: bool,
                    image: str | os.PathLike[str] | None = None) -> Op[DuplicateReport]:
    body: dict[str, Any] = {"similarity_threshold": threshold, "recursive": recursive}
    if directory is not None:
        body["directory_path"] = _path(directory)
    if image is not None:
        body["image_path"] = _path(image)
    d = yield Call("POST", f"{API}/duplicates/check", json=body)
    return DuplicateReport(
        groups=tuple(group_from(g) for g in d["duplicate_groups"]), total_images=d["total_images"],
        total_duplicates=d["total_duplicates"], threshold=d["similarity_threshold"], check_time=d["check_time"],
        failed_files=_failures(d.get("failed_files") or []),
    )


def compare(a: str | os.PathLike[str], b: str | os.PathLike[str], threshold: float) -> Op[Comparison]:
    body = {"image1_path": _path(a), "image2_path": _path(b), "similarity_threshold": threshold}
    d = yield Call("POST", f"{API}/duplicates/compare", json=body)
    return comparison_from(d)


def remove_duplicates(threshold: float, dry_run: bool, keep: str, delete_files: bool,
                      within: Sequence[str | os.PathLike[str]] | None = None) -> Op[RemovalReport]:
    params = {**_clean({"similarity_threshold": threshold, "dry_run": dry_run, "keep": keep,
                        "delete_files": delete_files}), **_within(within)}
    d = yield Call("DELETE", f"{API}/duplicates/remove-duplicates", params=params)
    return RemovalReport(
        groups=tuple(group_from(g) for g in d["duplicate_groups"]), kept_ids=tuple(d["kept_ids"]),
        removed_ids=tuple(d["removed_ids"]), removed_paths=tuple(d["removed_paths"]), dry_run=d["dry_run"],
        keep=d["keep"], threshold=d["similarity_threshold"], files_deleted=tuple(d["files_deleted"]),
        failed_files=_failures(d.get("failed_files") or []), left_ids=tuple(d.get("left_ids") or ()),
    )


def models_status() -> Op[dict[str, ModelStatus]]:
    d = yield Call("GET", f"{API}/models/status")
    return {role: ModelStatus(role=role, name=m["name"], loaded=m["loaded"], load_time=m["load_time"],
                              device=m["device"]) for role, m in d["details"].items()}


def models_preload() -> Op[dict[str, float]]:
    d = yield Call("POST", f"{API}/models/preload")
    roles = yield from models_status()  # the answer also carries the contract's model keys
    return {k: v for k, v in d["timings"].items() if k in roles or k == "total"}
