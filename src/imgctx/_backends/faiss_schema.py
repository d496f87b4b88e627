"""The SQLite schema of the ``faiss`` store, its migration, and the ``details`` table: a
record's photo metadata, text, colours and people, with the columns its filters compare.

Schema versions: 1 (records, tags, vectors, meta); 2 adds ``details``. Opening a version-1
file adds the table in the same transaction that opens it; its records simply have no details
row, which every filter reads as "no EXIF, no text, no people, no colours", so a filter on a
field never hides them unless it asks for that field.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from imgctx._backends.store_common import add_missing_columns
from imgctx._details import photo_from_json, photo_to_json
from imgctx._filters import RecordFilter, clock_key
from imgctx._types import ImageRecord

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL UNIQUE,
    filename TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    file_size INTEGER NOT NULL,
    format TEXT NOT NULL,
    caption TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    phash TEXT NOT NULL,
    dhash TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    orient_hashes TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS records_hash ON records(content_hash);
CREATE TABLE IF NOT EXISTS tags (
    rid INTEGER NOT NULL REFERENCES records(rowid) ON DELETE CASCADE,
    label TEXT NOT NULL,
    score REAL NOT NULL,
    coarse INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (rid, label)
);
CREATE INDEX IF NOT EXISTS tags_label ON tags(label);
CREATE TABLE IF NOT EXISTS vectors (
    rid INTEGER NOT NULL REFERENCES records(rowid) ON DELETE CASCADE,
    space TEXT NOT NULL,
    vec BLOB NOT NULL,
    PRIMARY KEY (rid, space)
);
CREATE TABLE IF NOT EXISTS details (
    rid INTEGER PRIMARY KEY REFERENCES records(rowid) ON DELETE CASCADE,
    photo TEXT,
    taken TEXT,
    camera_l TEXT,
    place_l TEXT,
    text TEXT NOT NULL DEFAULT '',
    text_l TEXT NOT NULL DEFAULT '',
    colors TEXT NOT NULL DEFAULT '[]',
    people INTEGER
);
CREATE INDEX IF NOT EXISTS details_taken ON details(taken);
"""

COLUMNS = (
    "rowid, id, path, filename, width, height, file_size, format, caption, content_hash, "
    "phash, dhash, mtime_ns, created_at, updated_at, orient_hashes"
)


def create_or_migrate(conn: sqlite3.Connection) -> None:
    """Create every table that is missing (which migrates a version-1 file) and record the
    schema version; run inside a write transaction."""
    for stmt in filter(str.strip, SCHEMA.split(";")):
        conn.execute(stmt)
    add_missing_columns(conn, "records", {"orient_hashes": "TEXT NOT NULL DEFAULT ''"})
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?), ('generation', '0')",
                 (str(SCHEMA_VERSION),))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
                 (str(SCHEMA_VERSION), SCHEMA_VERSION))


def write_details(conn: sqlite3.Connection, rid: int, record: ImageRecord) -> None:
    photo = record.photo
    conn.execute(
        "INSERT OR REPLACE INTO details(rid, photo, taken, camera_l, place_l, text, text_l, colors, people) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (rid, photo_to_json(photo),
         clock_key(photo.taken_at) if photo is not None and photo.taken_at is not None else None,
         (photo.camera or "").lower() or None if photo is not None else None,
         (photo.place or "").lower() or None if photo is not None else None,
         record.text, record.text.lower(), json.dumps([c.lower() for c in record.colors]), record.people),
    )


def read_details(conn: sqlite3.Connection, rid: int) -> dict[str, Any]:
    """The ImageRecord keywords of a record's details (none for a record without a row)."""
    row = conn.execute("SELECT photo, text, colors, people FROM details WHERE rid = ?", (rid,)).fetchone()
    if row is None:
        return {}
    return {"photo": photo_from_json(row[0]), "text": row[1], "colors": tuple(json.loads(row[2])),
            "people": None if row[3] is None else int(row[3])}


def where_sql(where: RecordFilter | None) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``records.rowid`` for a RecordFilter, and their arguments."""
    if where is None:
        return [], []
    conds: list[str] = []
    args: list[Any] = []

    def on_details(cond: str, *values: Any, negate: bool = False) -> None:
        conds.append(f"rowid {'NOT IN' if negate else 'IN'} (SELECT rid FROM details WHERE {cond})")
        args.extend(values)

    if where.taken_after is not None:
        on_details("taken >= ?", clock_key(where.taken_after))
    if where.taken_before is not None:
        on_details("taken < ?", clock_key(where.taken_before))
    for column, value in (("camera_l", where.camera), ("place_l", where.place), ("text_l", where.text_contains)):
        if value is not None:
            on_details(f"instr({column}, ?) > 0", value)
    if where.has_text is not None:
        on_details("trim(text) != ''", negate=not where.has_text)
    if where.has_people is not None:
        on_details("people > 0", negate=not where.has_people)
    if where.colors is not None:
        marks = ",".join("?" * len(where.colors))
        on_details(f"EXISTS (SELECT 1 FROM json_each(details.colors) WHERE value IN ({marks}))", *where.colors)
    return conds, args

