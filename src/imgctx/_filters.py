"""Filters on what an image shows and where and when it was taken (:class:`RecordFilter`).

Every field left as None asks nothing, so a photo without EXIF, text or a people count is never
hidden by a filter nobody asked for; a field that is set keeps only records that have what it
asks (a photo without a date never passes ``taken_after``). Dates compare on the camera's
clock, the time of day the photographer saw: an offset in the photo or in the filter is not
converted. ``taken_after`` is inclusive and ``taken_before`` exclusive; a plain date means the
start of that day.

Stores get the filter next to ``objects``: the memory store applies :meth:`RecordFilter.matches`,
the faiss store translates it to SQL, the chroma and qdrant stores apply ``matches`` to the
records' payloads (a scan) and restrict the vector query to the ids that pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, time

from imgctx._errors import ConfigurationError
from imgctx._types import ImageRecord

#: The filter names every front end uses (library keywords, CLI options, HTTP query parameters).
FILTER_NAMES = ("taken_after", "taken_before", "camera", "place", "has_text", "has_people",
                "text_contains", "colors")


def clock_key(value: datetime) -> str:
    """A datetime as the sortable camera-clock string the stores compare (offset dropped)."""
    return value.replace(tzinfo=None).isoformat(timespec="seconds")


def parse_when(value: str | date | datetime | None, name: str) -> datetime | None:
    """``2020-01-01``, ``2020-01-01T18:30``, a date or a datetime as a naive camera-clock
    datetime; a date means its first second."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(
                f"{name} must be a date or a date and time such as 2020-01-31 or 2020-01-31T18:30, got {value!r}"
            ) from None
        return parsed.replace(tzinfo=None)
    raise ConfigurationError(f"{name} must be a date, a datetime or an ISO string, got {type(value).__name__}")


def _text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {type(value).__name__}")
    return value.strip().lower() or None


def _flag(value: bool | str | None, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _words(value: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    cleaned = tuple(sorted({str(v).strip().lower() for v in items if v and str(v).strip()}))
    return cleaned or None


@dataclass(frozen=True)
class RecordFilter:
    """What a record must have to pass; None fields ask nothing (see the module docstring).

    ``camera``, ``place`` and ``text_contains`` are case-insensitive substrings of the camera
    (make and model), the place (city, region, country) and the text read in the image;
    ``colors`` keeps images with any of these dominant colours; ``has_text`` and
    ``has_people`` ask whether text was read and people were seen. Build one with
    :func:`make_filter`, which checks and normalises the values.
    """

    taken_after: datetime | None = None
    taken_before: datetime | None = None
    camera: str | None = None
    place: str | None = None
    has_text: bool | None = None
    has_people: bool | None = None
    text_contains: str | None = None
    colors: tuple[str, ...] | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def matches(self, record: ImageRecord) -> bool:
        """Whether ``record`` passes every field that is set."""
        photo = record.photo
        taken = photo.taken_at if photo is not None else None
        if self.taken_after is not None and (taken is None or clock_key(taken) < clock_key(self.taken_after)):
            return False
        if self.taken_before is not None and (taken is None or clock_key(taken) >= clock_key(self.taken_before)):
            return False
        if self.camera is not None and self.camera not in ((photo.camera or "") if photo else "").lower():
            return False
        if self.place is not None and self.place not in ((photo.place or "") if photo else "").lower():
            return False
        if self.text_contains is not None and self.text_contains not in record.text.lower():
            return False
        if self.has_text is not None and self.has_text != bool(record.text.strip()):
            return False
        if self.has_people is not None and self.has_people != bool(record.people):
            return False
        return self.colors is None or bool(set(self.colors).intersection(c.lower() for c in record.colors))


def make_filter(
    taken_after: str | date | datetime | None = None,
    taken_before: str | date | datetime | None = None,
    camera: str | None = None,
    place: str | None = None,
    has_text: bool | str | None = None,
    has_people: bool | str | None = None,
    text_contains: str | None = None,
    colors: Sequence[str] | str | None = None,
) -> RecordFilter | None:
    """A checked :class:`RecordFilter`, or None when nothing is asked. Raises
    ConfigurationError for a value that is not a date, a string or a flag."""
    flt = RecordFilter(
        taken_after=parse_when(taken_after, "taken_after"),
        taken_before=parse_when(taken_before, "taken_before"),
        camera=_text(camera, "camera"), place=_text(place, "place"),
        has_text=_flag(has_text, "has_text"), has_people=_flag(has_people, "has_people"),
        text_contains=_text(text_contains, "text_contains"), colors=_words(colors),
    )
    return None if flt.empty else flt


def check_filters(filters: dict[str, object]) -> RecordFilter | None:
    """The keyword filters of search/list/count as one checked RecordFilter (None: none asked);
    ConfigurationError for an unknown name or a bad value."""
    unknown = sorted(set(filters) - set(FILTER_NAMES))
    if unknown:
        raise ConfigurationError(f"unknown filter {', '.join(unknown)}; the filters are {', '.join(FILTER_NAMES)}")
    return make_filter(**filters)  # type: ignore[arg-type]


def filter_params(filters: dict[str, object]) -> dict[str, str | bool]:
    """The keyword filters, checked, as the server's query parameters (``imgctx.connect()``):
    datetimes in ISO form on the camera's clock, colours comma-separated; unset ones left out."""
    flt = check_filters(filters)
    if flt is None:
        return {}
    out: dict[str, str | bool] = {}
    for f in fields(flt):
        value = getattr(flt, f.name)
        if value is None:
            continue
        if isinstance(value, datetime):
            out[f.name] = value.isoformat()
        elif isinstance(value, tuple):
            out[f.name] = ",".join(value)
        else:
            out[f.name] = value
    return out
