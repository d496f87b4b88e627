"""Full-fidelity bodies for the ``records`` and ``search`` routes: a record with every field of
the library's ``ImageRecord`` (exact tag scores, ``mtime_ns``), and search hits with their
per-space scores. ``imgctx.connect()`` rebuilds the library's dataclasses from exactly these."""

from __future__ import annotations

from pydantic import BaseModel, Field

from imgctx import DuplicateMatch, ImageRecord, SearchHit
from imgctx.server.schemas import ComparisonInfo, PhotoInfoModel, image_info_data


class TagOut(BaseModel):
    label: str
    score: float = Field(description="The tagger's confidence in [0, 1]")
    coarse: bool = Field(False, description="A common noun derived from finer labels")
    confident: bool = Field(True, description="False: a candidate below the threshold, not in objects")


class RecordOut(BaseModel):
    """Everything stored about one image (the library's ``ImageRecord``)."""

    id: str
    path: str
    filename: str
    size: list[int] = Field(description="[width, height] in pixels, upright")
    file_size: int
    format: str
    caption: str
    objects: list[str]
    content_hash: str = Field(description="SHA-256 of the file's bytes")
    phash: str
    dhash: str
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")
    mtime_ns: int = Field(description="The file's modification time when it was indexed")
    orient_hashes: str = Field("", description="The hashes duplicate detection compares across rotations")
    tags: list[TagOut]
    photo: PhotoInfoModel | None = Field(None, description="EXIF facts and place; null without them")
    text: str = Field("", description="The text read in the image (OCR)")
    colors: list[str] = Field(default_factory=list, description="Dominant colours, most covering first")
    people: int | None = Field(None, description="People or faces seen; null when no detector ran")

    @classmethod
    def of(cls, record: ImageRecord) -> RecordOut:
        return cls(
            **image_info_data(record), content_hash=record.content_hash, phash=record.phash,
            dhash=record.dhash, created_at=record.created_at.isoformat(),
            updated_at=record.updated_at.isoformat(), mtime_ns=record.mtime_ns,
            orient_hashes=record.orient_hashes, tags=[TagOut(label=t.label, score=t.score, coarse=t.coarse, confident=t.confident)
                  for t in record.tags],
            photo=PhotoInfoModel.of(record.photo), text=record.text, colors=list(record.colors),
            people=record.people,
        )


class HitOut(BaseModel):
    """A search hit: the record, its fused ``score`` in [0, 1], ``distance`` = 1 - score, and the
    similarity per vector space that was fused into it."""

    record: RecordOut
    score: float
    distance: float
    scores: dict[str, float]

    @classmethod
    def of(cls, hit: SearchHit) -> HitOut:
        return cls(record=RecordOut.of(hit.record), score=hit.score, distance=hit.distance,
                   scores=dict(hit.scores))


class RecordPage(BaseModel):
    records: list[RecordOut]
    total: int = Field(description="How many records match the filter, over all pages")
    limit: int
    offset: int


class CountResponse(BaseModel):
    count: int
    objects: list[str] | None = Field(description="The object filter that was applied")


class MatchOut(BaseModel):
    """A stored image that duplicates a checked one (``Extractor.check_image``)."""

    record: RecordOut
    comparison: ComparisonInfo

    @classmethod
    def of(cls, match: DuplicateMatch) -> MatchOut:
        return cls(record=RecordOut.of(match.record), comparison=ComparisonInfo(**ComparisonInfo.data(match.comparison)))
