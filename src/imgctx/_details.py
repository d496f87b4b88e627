"""A record's details beyond caption and tags (photo metadata, text read in the image, colours,
people): merging the annotators' findings, serialising them for the stores, and the words they
add to the text that text search embeds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from imgctx._types import Annotation, PhotoInfo, Tag

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def merge_annotations(found: Sequence[Annotation]) -> Annotation:
    """Several annotators' findings for one image: per field the last one that says something,
    tags from all of them."""
    out: dict[str, Any] = {"tags": ()}
    for a in found:
        for f in fields(Annotation):
            value = getattr(a, f.name)
            if f.name == "tags":
                out["tags"] = (*out["tags"], *value)
            elif value is not None:
                out[f.name] = value
    return Annotation(**out)


def photo_to_json(photo: PhotoInfo | None) -> str | None:
    if photo is None:
        return None
    data = asdict(photo)
    data["taken_at"] = photo.taken_at.isoformat() if photo.taken_at is not None else None
    return json.dumps({k: v for k, v in data.items() if v is not None}, ensure_ascii=False)


def photo_from_json(text: str | None) -> PhotoInfo | None:
    if not text:
        return None
    data = json.loads(text)
    known = {f.name for f in fields(PhotoInfo)}
    data = {k: v for k, v in data.items() if k in known}
    if data.get("taken_at"):
        data["taken_at"] = datetime.fromisoformat(data["taken_at"])
    return PhotoInfo(**data)


def annotation_to_json(found: Annotation) -> str:
    """One image's findings as JSON (to carry them between processes, e.g. from a Ray worker)."""
    return json.dumps({
        "photo": photo_to_json(found.photo), "text": found.text,
        "colors": list(found.colors) if found.colors is not None else None, "people": found.people,
        "tags": [[t.label, t.score, t.coarse, t.confident] for t in found.tags],
    }, ensure_ascii=False)


def annotation_from_json(text: str) -> Annotation:
    """The inverse of :func:`annotation_to_json` (an empty text: nothing found)."""
    if not text:
        return Annotation()
    data = json.loads(text)
    colors = data.get("colors")
    return Annotation(
        photo=photo_from_json(data.get("photo")), text=data.get("text"),
        colors=tuple(colors) if colors is not None else None, people=data.get("people"),
        tags=tuple(Tag(str(label), float(score), bool(coarse), bool(confident))
                   for label, score, coarse, confident in data.get("tags", ())),
    )


def people_words(count: int | None) -> list[str]:
    if not count:
        return []
    return ["a person"] if count == 1 else [f"{count} people" if count < 6 else "a group of people"]


def details_words(photo: PhotoInfo | None, text: str, colors: Sequence[str],
                  people: int | None) -> str:
    """What the details add to an image's text document: people, colours, the place and month
    it was taken, the camera, and the text read in it."""
    parts: list[str] = people_words(people)
    if colors:
        parts.append(" and ".join(colors[:3]) + " colours")
    if photo is not None:
        if photo.place:
            parts.append(f"taken in {photo.place}")
        if photo.taken_at is not None:
            parts.append(f"taken in {_MONTHS[photo.taken_at.month - 1]} {photo.taken_at.year}")
        if photo.camera:
            parts.append(f"shot with a {photo.camera}")
    if text.strip():
        parts.append(f'text: "{" ".join(text.split())[:300]}"')
    return "; ".join(parts)


def caption_details(found: Annotation) -> str:
    """What a caption composed from tags adds from the annotators: colours, text, place."""
    parts = []
    if found.colors:
        parts.append("in " + " and ".join(found.colors[:2]))
    if found.text and found.text.strip():
        parts.append(f'with the text "{" ".join(found.text.split()[:8])}"')
    if found.photo is not None and found.photo.place:
        parts.append(f"taken in {found.photo.place}")
    return ", ".join(parts)


def with_tags(tags: Sequence[Tag], extra: Sequence[Tag]) -> list[Tag]:
    """``tags`` with the annotators' tags added after them (a label already there is kept)."""
    seen = {t.label.lower() for t in tags}
    out = list(tags)
    for t in extra:
        if t.label.lower() not in seen:
            seen.add(t.label.lower())
            out.append(Tag(t.label.lower(), t.score, t.coarse, t.confident))
    return out


def annotate_batch(annotators: Sequence[Any], images: Sequence[Any], paths: Sequence[str]) -> list[Annotation]:
    """Every annotator on one batch, their findings merged per image."""
    if not annotators:
        return [Annotation() for _ in images]
    found = [a.annotate(images, paths) for a in annotators]
    return [merge_annotations([f[i] for f in found]) for i in range(len(images))]
