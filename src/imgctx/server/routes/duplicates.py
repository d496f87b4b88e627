"""Duplicate detection (``/api/v1/duplicates``), on the library's duplicate engine."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/duplicates", tags=["duplicates"])
