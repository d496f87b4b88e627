"""The photo filters as HTTP query parameters, named as in the library (``taken_after``,
``taken_before``, ``camera``, ``place``, ``has_text``, ``has_people``, ``text_contains``,
``colors``); values are checked by the library (a bad date is a 400 with the reason)."""

from __future__ import annotations

from typing import Any

from fastapi import Query


def photo_filters(
    taken_after: str | None = Query(None, max_length=40, description="Photos taken on or after this date or datetime (ISO, camera clock)"),
    taken_before: str | None = Query(None, max_length=40, description="Photos taken before this date or datetime"),
    camera: str | None = Query(None, max_length=200, description="Camera make or model contains this (case-insensitive)"),
    place: str | None = Query(None, max_length=200, description="City, region or country contains this"),
    has_text: bool | None = Query(None, description="Images with (true) or without (false) text read in them"),
    has_people: bool | None = Query(None, description="Images with (true) or without (false) people seen"),
    text_contains: str | None = Query(None, max_length=500, description="The text read in the image contains this"),
    colors: str | None = Query(None, max_length=500, description="Comma-separated dominant colours, any of them"),
) -> dict[str, Any]:
    """The filters given, as keywords for ``Extractor.search`` / ``list`` / ``count``."""
    given = {"taken_after": taken_after, "taken_before": taken_before, "camera": camera, "place": place,
             "has_text": has_text, "has_people": has_people, "text_contains": text_contains, "colors": colors}
    return {k: v for k, v in given.items() if v is not None}
