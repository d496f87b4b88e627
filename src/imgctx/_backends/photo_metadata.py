"""``photo-metadata``: an annotator that reads a photo's EXIF (date taken with its UTC offset,
camera, lens, focal length, exposure, ISO, GPS) and names the place from the GPS position with
the offline reverse geocoder of :mod:`imgctx._backends.places`.

EXIF is read from the block the pipeline's decoder already holds (``image.info["exif"]``,
kept through its EXIF rotation and resizing), so the file is not opened again; only a picture
without that block (a TIFF, whose EXIF lives in its own tags, or a file without EXIF) has its
file's header read (Pillow opens lazily, so no pixels are decoded). A file without EXIF, or with
fields that cannot be parsed, gets None for what it lacks; it never fails the image.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from PIL import Image
from pydantic import Field

from imgctx._backends.places import ReverseGeocoder
from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, plugin_config
from imgctx._types import Annotation, PhotoInfo

log = logging.getLogger(__name__)

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, DATETIME = 0x010F, 0x0110, 0x0132
DATETIME_ORIGINAL, DATETIME_DIGITIZED = 0x9003, 0x9004
OFFSET_TIME_ORIGINAL, OFFSET_TIME = 0x9011, 0x9010
EXPOSURE_TIME, F_NUMBER, ISO, FOCAL_LENGTH = 0x829A, 0x829D, 0x8827, 0x920A
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def _number(value: Any) -> float | None:
    try:
        if isinstance(value, tuple) and len(value) == 2:  # an unreduced rational
            number = float(value[0]) / float(value[1])
        else:
            number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _offset(value: Any) -> timezone | None:
    text = _text(value)
    if not text or len(text) < 6 or text[0] not in "+-":
        return None
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def parse_exif_datetime(value: Any, offset: Any = None) -> datetime | None:
    """``2021:07:14 18:30:05`` (EXIF's form) with an optional ``+02:00`` offset."""
    text = _text(value)
    if not text:
        return None
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            parsed = datetime.strptime(text[:19], fmt)
        except ValueError:
            continue
        tz = _offset(offset)
        return parsed.replace(tzinfo=tz) if tz is not None else parsed
    return None


def _degrees(value: Any, ref: Any) -> float | None:
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    parts = [_number(v) for v in value]
    if any(p is None for p in parts):
        return None
    deg = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0  # type: ignore[operator]
    if (_text(ref) or "").upper() in ("S", "W"):
        deg = -deg
    return deg


def _gps(gps: Any) -> tuple[float | None, float | None, float | None]:
    lat, lon = _degrees(gps.get(2), gps.get(1)), _degrees(gps.get(4), gps.get(3))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        lat = lon = None
    alt = _number(gps.get(6))
    if alt is not None and gps.get(5) in (1, b"\x01"):
        alt = -alt
    return lat, lon, alt


def read_photo_info(path: str, image: Any = None) -> PhotoInfo | None:
    """The EXIF facts (no place yet) of ``image``, a decoded PIL image that still holds its
    file's EXIF block, or else of the image file at ``path``; None without EXIF."""
    raw = getattr(image, "info", {}).get("exif") if image is not None else None
    try:
        if isinstance(raw, bytes) and raw:
            exif = Image.Exif()
            exif.load(raw)
        elif path:
            with Image.open(path) as img:
                exif = img.getexif()
        else:
            return None
        if not exif:
            return None
        sub = exif.get_ifd(EXIF_IFD)
        gps = exif.get_ifd(GPS_IFD)
    except Exception as exc:  # a broken EXIF block loses the metadata, not the image
        log.debug("no EXIF from %s: %s", path, exc)
        return None
    taken = (parse_exif_datetime(sub.get(DATETIME_ORIGINAL), sub.get(OFFSET_TIME_ORIGINAL))
             or parse_exif_datetime(sub.get(DATETIME_DIGITIZED), sub.get(OFFSET_TIME))
             or parse_exif_datetime(exif.get(DATETIME), sub.get(OFFSET_TIME)))
    lat, lon, alt = _gps(gps) if gps else (None, None, None)
    iso_value = sub.get(ISO)
    iso = _number(iso_value[0] if isinstance(iso_value, tuple) and iso_value else iso_value)
    lens = " ".join(dict.fromkeys(t for t in (_text(sub.get(LENS_MAKE)), _text(sub.get(LENS_MODEL))) if t)) or None
    info = PhotoInfo(
        taken_at=taken, camera_make=_text(exif.get(MAKE)), camera_model=_text(exif.get(MODEL)), lens=lens,
        focal_length=_number(sub.get(FOCAL_LENGTH)), exposure_time=_number(sub.get(EXPOSURE_TIME)),
        f_number=_number(sub.get(F_NUMBER)), iso=int(iso) if iso is not None else None,
        latitude=lat, longitude=lon, altitude=alt,
    )
    return None if info == PhotoInfo() else info


class PhotoSettings(PluginSettings):
    """Settings of the ``photo-metadata`` annotator (``IMGCTX_PHOTO_*``)."""

    model_config = plugin_config("photo")

    places: bool = Field(
        True, description="Name the place (city, region, country) of photos with GPS, with the offline reverse geocoder.",
    )


class PhotoMetadata:
    """EXIF facts and place names; needs no weights (the geocoder loads on the first GPS position)."""

    name = "photo-metadata"
    device = "cpu"

    def __init__(self, places: bool = True) -> None:
        self.geocoder = ReverseGeocoder() if places else None
        self._checked = False

    @property
    def loaded(self) -> bool:
        return self._checked

    @property
    def load_time(self) -> float | None:
        return self.geocoder.load_time if self.geocoder is not None else 0.0

    def load(self) -> None:
        """Check that the geocoder can load (its data loads on the first GPS position)."""
        if self.geocoder is not None:
            self.geocoder.check_installed()
        self._checked = True

    def annotate(self, images: Sequence[Any], paths: Sequence[str]) -> list[Annotation]:
        infos = [read_photo_info(p, image) for image, p in zip(images, paths, strict=True)]
        points: list[tuple[float, float]] = []
        located: list[int] = []
        for i, info in enumerate(infos):
            if info is not None and info.latitude is not None and info.longitude is not None:
                points.append((info.latitude, info.longitude))
                located.append(i)
        if self.geocoder is not None and located:
            for i, (city, region, country) in zip(located, self.geocoder.places(points), strict=True):
                info = infos[i]
                assert info is not None
                infos[i] = PhotoInfo(**{**info.__dict__, "city": city, "region": region, "country": country})
        return [Annotation(photo=info) for info in infos]


def photo_metadata_factory(settings: Settings) -> PhotoMetadata:
    return PhotoMetadata(places=settings.plugin(PhotoSettings).places)


@hookimpl
def register_annotators(register: Any) -> None:
    register("photo-metadata", photo_metadata_factory, settings=PhotoSettings)
