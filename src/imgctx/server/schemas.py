"""HTTP request and response bodies (pydantic), converted to and from the library's types.

The field names are the service contract's. These models are the server's; the library's
dataclasses (``ImageRecord``, ``SearchHit``, ``BatchReport``, ...) never double as them: a model
whose fields match a library type reads it with ``model_validate`` (``from_attributes``), the
others have an ``of()`` mapper, and the messages are composed here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from imgctx import (
    DEFAULT_THRESHOLD,
    BatchReport,
    Comparison,
    DuplicateMatch,
    DuplicateReport,
    FailedFile,
    ImageRecord,
    PhotoInfo,
    ProcessResult,
    RemovalReport,
    SearchHit,
    Tag,
)

TaskStatus = Literal["queued", "processing", "completed", "failed", "interrupted"]

#: A path as clients send it: not blank, no NUL character, at most 4096 characters.
PATH_PATTERN = r"^[^\x00]*[^\x00\s][^\x00]*$"
PATH_LIMITS: dict[str, Any] = {"min_length": 1, "max_length": 4096, "pattern": PATH_PATTERN}


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ------------------------------------------------------------------------------------


class ErrorDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    status_code: int


class ErrorResponse(BaseModel):
    """The contract's error envelope."""

    success: Literal[False] = False
    error: str
    message: str
    details: ErrorDetails
    timestamp: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "Bad request"), (401, "Missing or wrong API key"), (403, "Path outside the allowed roots"),
        (404, "Not found"), (422, "Invalid request data"), (500, "Internal server error"),
    )
}


# -- images ------------------------------------------------------------------------------------


def _round(value: float | None, places: int = 6) -> float | None:
    return None if value is None else round(value, places)


def image_info_data(record: ImageRecord) -> dict[str, Any]:
    """A record's ``image_info`` as JSON-ready values (for responses that FastAPI validates, and
    for WebSocket events); ``ImageInfo.model_validate(record)`` gives the model."""
    return {
        "id": record.id, "path": record.path, "filename": record.filename,
        "size": [record.size[0], record.size[1]], "file_size": record.file_size,
        "format": record.format, "caption": record.caption, "objects": list(record.objects),
    }


class ImageInfo(BaseModel):
    """The contract's ``image_info`` (``ImageInfo.model_validate(record)``)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    path: str
    filename: str
    size: list[int] = Field(description="[width, height] in pixels, upright")
    file_size: int
    format: str
    caption: str
    objects: list[str]


class TagInfo(BaseModel):
    label: str
    score: float

    @classmethod
    def of(cls, tag: Tag) -> TagInfo:
        return cls(label=tag.label, score=round(tag.score, 4))


class PhotoInfoModel(BaseModel):
    """A photo's EXIF facts and place (``imgctx.PhotoInfo``); absent fields are null."""

    model_config = ConfigDict(from_attributes=True)

    taken_at: str | None = Field(None, description="ISO date and time on the camera clock, with its UTC offset when the file records it")
    camera: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    focal_length: float | None = Field(None, description="millimetres")
    exposure_time: float | None = Field(None, description="seconds")
    f_number: float | None = None
    iso: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = Field(None, description="metres above sea level")
    city: str | None = None
    region: str | None = None
    country: str | None = None
    place: str | None = Field(None, description="city, region, country")

    @classmethod
    def of(cls, photo: PhotoInfo | None) -> PhotoInfoModel | None:
        if photo is None:
            return None
        data = {k: v for k, v in vars(photo).items() if k != "taken_at"}
        taken = photo.taken_at.isoformat() if photo.taken_at is not None else None
        return cls(**data, taken_at=taken, camera=photo.camera, place=photo.place)


class ImageDetails(ImageInfo):
    """``image_info`` plus hashes, tags, timestamps and what the annotators found: photo metadata,
    the text read in the image, its dominant colours and how many people were seen
    (``GET /images/info/{id}``)."""

    content_hash: str
    phash: str
    dhash: str
    tags: list[TagInfo]
    created_at: str
    updated_at: str
    photo: PhotoInfoModel | None = None
    text: str = ""
    colors: list[str] = Field(default_factory=list)
    people: int | None = Field(None, description="people or faces seen; null when no detector ran")

    @classmethod
    def of(cls, record: ImageRecord) -> ImageDetails:
        return cls(
            **image_info_data(record), content_hash=record.content_hash, phash=record.phash, dhash=record.dhash,
            tags=[TagInfo.of(t) for t in record.tags], created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(), photo=PhotoInfoModel.of(record.photo), text=record.text,
            colors=list(record.colors), people=record.people,
        )


class SearchResult(ImageInfo):
    """A search hit: ``image_info`` plus ``score`` in [0, 1], ``distance`` = 1 - score and
    ``scores``, the similarity in each vector space that was fused into ``score``."""

    score: float | None = None
    distance: float | None = None
    scores: dict[str, float] | None = Field(None, description="Per vector space ('text', 'image'), in [0, 1]")

    @staticmethod
    def data(hit: SearchHit, include_metadata: bool = True) -> dict[str, Any]:
        """The hit as this model's fields (without the scores unless ``include_metadata``)."""
        data = image_info_data(hit.record)
        if include_metadata:
            data.update(score=round(hit.score, 6), distance=round(hit.distance, 6),
                        scores={space: round(value, 6) for space, value in hit.scores.items()})
        return data


class ProcessImageRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"image_path": "photos/cat.jpg"}]})

    image_path: str = Field(**PATH_LIMITS, description="Path of an image file inside an allowed root")
    force_reprocess: bool = False


class ProcessImageResponse(BaseModel):
    success: bool = True
    image_id: str
    message: str
    image_info: ImageInfo
    processing_time: float
    was_duplicate: bool
    skipped: bool = False
    duplicate_of: str | None = None

    @classmethod
    def of(cls, result: ProcessResult) -> ProcessImageResponse:
        if result.skipped:
            message = "Image already processed and unchanged"
        elif result.duplicate_of:
            message = "Image processed successfully (same content as an indexed image)"
        else:
            message = "Image processed successfully"
        return cls(
            image_id=result.record.id, message=message, image_info=ImageInfo.model_validate(result.record),
            processing_time=round(result.processing_time, 4), was_duplicate=result.was_duplicate,
            skipped=result.skipped, duplicate_of=result.duplicate_of,
        )


class UploadResponse(BaseModel):
    success: bool = True
    filename: str
    file_path: str
    file_size: int
    image_id: str | None = None
    message: str
    image_info: ImageInfo | None = None
    was_duplicate: bool | None = None


class DeleteImageResponse(BaseModel):
    success: bool = True
    image_id: str
    path: str
    file_deleted: bool
    message: str


# -- directories -------------------------------------------------------------------------------


class DirectoryRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"directory_path": "photos", "recursive": True}]})

    directory_path: str = Field(**PATH_LIMITS, description="A folder inside an allowed root")
    force_reprocess: bool = False
    recursive: bool = False


class FailureInfo(BaseModel):
    """A ``FailedFile`` (``FailureInfo.model_validate(failed)``)."""

    model_config = ConfigDict(from_attributes=True)

    path: str
    reason: str


class DirectoryProcessResponse(BaseModel):
    success: bool = True
    total_files: int
    processed: int
    skipped: int
    failed: int
    processed_ids: list[str]
    skipped_ids: list[str] = Field(default_factory=list, description="Unchanged files already indexed")
    failed_files: list[str] = Field(description="Paths that could not be processed")
    failures: list[FailureInfo] = Field(description="The same files, each with its reason")
    processing_time: float
    message: str

    @classmethod
    def of(cls, report: BatchReport, refused: list[FailedFile] | None = None) -> DirectoryProcessResponse:
        failures = [*report.failed_files, *(refused or [])]
        return cls(
            total_files=report.total_files + len(refused or []), processed=report.processed,
            skipped=report.skipped, failed=len(failures), processed_ids=list(report.processed_ids),
            skipped_ids=list(report.skipped_ids),
            failed_files=[f.path for f in failures],
            failures=[FailureInfo.model_validate(f) for f in failures],
            processing_time=round(report.processing_time, 4),
            message=f"Directory processed: {report.processed} images processed",
        )


class TaskCreated(BaseModel):
    task_id: str
    status: TaskStatus
    message: str


class TaskInfo(BaseModel):
    task_id: str
    status: TaskStatus
    progress: float = Field(description="Percent done, 0 to 100")
    message: str
    result: DirectoryProcessResponse | None = None
    error: str | None = None
    created_at: str
    updated_at: str
    directory_path: str | None = None


class ScannedFile(BaseModel):
    path: str
    filename: str
    file_size: int
    indexed: bool


class ScanResponse(BaseModel):
    success: bool = True
    directory_path: str
    recursive: bool
    total_files: int
    total_size: int
    files: list[ScannedFile]


# -- health, status, models -------------------------------------------------------------------


class HealthStats(BaseModel):
    total_images: int | None
    collection_name: str
    db_path: str


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded"]
    version: str
    database_connected: bool
    models_loaded: bool
    uptime: float
    stats: HealthStats


class ModelDetail(BaseModel):
    name: str
    loaded: bool
    load_time: float | None
    device: str


class ModelsStatusResponse(BaseModel):
    models: dict[str, bool]
    details: dict[str, ModelDetail]
    device: str
    timestamp: str


class PreloadResponse(BaseModel):
    success: bool
    timings: dict[str, float]
    device: str
    timestamp: str


# -- duplicates -------------------------------------------------------------------------------


class DuplicateCheckRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"directory_path": "photos",
                                                               "similarity_threshold": 0.95}]})

    image_path: str | None = Field(None, **PATH_LIMITS, description="Check this image (against the store, "
                                   "or against directory_path's images when both are given)")
    directory_path: str | None = Field(None, **PATH_LIMITS, description="Group the images of this folder "
                                       "(neither path: group the whole store)")
    similarity_threshold: float = Field(DEFAULT_THRESHOLD, ge=0.0, le=1.0)
    recursive: bool = False


class DuplicateGroupInfo(BaseModel):
    """The contract's ``duplicate_groups`` item (``paths``: the representative's first);
    ``DuplicateGroupInfo.model_validate(group)`` reads a ``DuplicateGroup``."""

    model_config = ConfigDict(from_attributes=True)

    representative_id: str | None = Field(description="None for a checked image that is not indexed")
    duplicate_ids: list[str]
    similarity_scores: list[float]
    paths: list[str]
    exact: list[bool]


class DuplicateCheckResponse(BaseModel):
    success: bool = True
    total_images: int
    duplicate_groups: list[DuplicateGroupInfo]
    total_duplicates: int
    similarity_threshold: float
    check_time: float
    failed_files: list[FailureInfo]
    message: str

    @classmethod
    def of(cls, report: DuplicateReport, groups: list[DuplicateGroupInfo] | None = None) -> DuplicateCheckResponse:
        """The response for a report; ``groups`` replaces the report's groups (already mapped)."""
        if groups is None:
            groups = [DuplicateGroupInfo.model_validate(g) for g in report.groups]
        return cls(
            total_images=report.total_images, duplicate_groups=groups,
            total_duplicates=report.total_duplicates, similarity_threshold=report.threshold,
            check_time=round(report.check_time, 4),
            failed_files=[FailureInfo.model_validate(f) for f in report.failed_files],
            message=f"Found {len(groups)} duplicate groups with {report.total_duplicates} duplicate images",
        )


class ComparisonInfo(BaseModel):
    similarity: float = Field(description="Combined similarity in [0, 1]")
    is_duplicate: bool
    threshold: float
    exact: bool
    phash_distance: int
    dhash_distance: int
    hash_similarity: float
    embedding_cosine: float | None
    embedding_similarity: float | None
    reason: str = Field("", description="Which evidence decided (see docs/duplicates.md)")
    orientation: str = "upright"
    turned_hash_distance: float | None = None
    geometric_inliers: int | None = None
    geometric_contained: float | None = None
    geometric_overlap: float | None = None

    @staticmethod
    def data(c: Comparison) -> dict[str, Any]:
        """A comparison as this model's fields (similarities rounded to 6 places)."""
        return {
            "similarity": round(c.similarity, 6), "is_duplicate": c.is_duplicate, "threshold": c.threshold,
            "exact": c.exact, "phash_distance": c.phash_distance, "dhash_distance": c.dhash_distance,
            "hash_similarity": round(c.hash_similarity, 6), "embedding_cosine": _round(c.embedding_cosine),
            "embedding_similarity": _round(c.embedding_similarity), "reason": c.reason,
            "orientation": c.orientation, "turned_hash_distance": c.turned_hash_distance,
            "geometric_inliers": c.geometric_inliers, "geometric_contained": c.geometric_contained,
            "geometric_overlap": c.geometric_overlap,
        }


class DuplicateMatchInfo(ImageInfo):
    similarity: float
    comparison: ComparisonInfo

    @classmethod
    def of(cls, match: DuplicateMatch) -> DuplicateMatchInfo:
        return cls(**image_info_data(match.record), similarity=round(match.similarity, 6),
                   comparison=ComparisonInfo(**ComparisonInfo.data(match.comparison)))


class CheckImageResponse(BaseModel):
    success: bool = True
    image_path: str
    image_id: str | None = Field(description="The checked image's id when it is indexed")
    similarity_threshold: float
    total_matches: int
    duplicates: list[DuplicateMatchInfo]
    check_time: float
    message: str


class CompareRequest(_Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"image1_path": "photos/cat.jpg",
                                                               "image2_path": "photos/cat-copy.jpg"}]})

    image1_path: str = Field(**PATH_LIMITS)
    image2_path: str = Field(**PATH_LIMITS)
    similarity_threshold: float = Field(DEFAULT_THRESHOLD, ge=0.0, le=1.0)


class CompareResponse(ComparisonInfo):
    success: bool = True
    image1_path: str
    image2_path: str
    message: str

    @classmethod
    def of(cls, c: Comparison, image1_path: str, image2_path: str) -> CompareResponse:
        verdict = "duplicates" if c.is_duplicate else "not duplicates"
        return cls(**cls.data(c), image1_path=image1_path, image2_path=image2_path,
                   message=f"The images are {verdict} (similarity {c.similarity:.3f})")


class RemovalResponse(BaseModel):
    success: bool = True
    dry_run: bool
    keep: str
    similarity_threshold: float
    duplicate_groups: list[DuplicateGroupInfo]
    kept_ids: list[str]
    removed_ids: list[str]
    removed_paths: list[str]
    files_deleted: list[str]
    failed_files: list[FailureInfo]
    left_ids: list[str] = Field(default_factory=list, description="Group members left in place")
    total_removed: int
    message: str

    @classmethod
    def of(cls, report: RemovalReport) -> RemovalResponse:
        verb = "Would remove" if report.dry_run else "Removed"
        return cls(
            dry_run=report.dry_run, keep=report.keep, similarity_threshold=report.threshold,
            duplicate_groups=[DuplicateGroupInfo.model_validate(g) for g in report.groups],
            kept_ids=list(report.kept_ids), removed_ids=list(report.removed_ids),
            removed_paths=list(report.removed_paths), files_deleted=list(report.files_deleted),
            failed_files=[FailureInfo.model_validate(f) for f in report.failed_files],
            left_ids=list(report.left_ids), total_removed=len(report.removed_ids),
            message=f"{verb} {len(report.removed_ids)} duplicate images from {len(report.groups)} groups",
        )


# -- the web app's endpoints: objects, image search, UI configuration ---------------------------


class ObjectCount(BaseModel):
    label: str
    count: int = Field(description="How many images carry this tag")


class UIConfig(BaseModel):
    version: str
    caption_from_tags: bool = Field(description="Captions are composed from the tags, not by a caption model")
    image_search: bool = Field(description="The models can search by image")
    upload_dir: str
    allowed_roots: list[str]
    total_images: int


# -- websockets --------------------------------------------------------------------------------


class WebSocketStats(BaseModel):
    active_connections: int
    total_connections: int
    connections_by_endpoint: dict[str, int]
    subscriptions: dict[str, int]
    messages_sent: int
    messages_received: int
    messages_dropped: int
    timestamp: str
