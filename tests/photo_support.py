"""Real photos (scikit-image's samples) saved as JPEG with real EXIF written by Pillow."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, TiffImagePlugin

#: Known city centres: (latitude, longitude).
PARIS = (48.8530, 2.3499)  # Notre-Dame
TOKYO = (35.6895, 139.6917)
SYDNEY = (-33.8688, 151.2093)
NEW_YORK = (40.7128, -74.0060)


def _dms(value: float) -> tuple[TiffImagePlugin.IFDRational, ...]:
    value = abs(value)
    deg = int(value)
    minutes = int((value - deg) * 60)
    seconds = round(((value - deg) * 60 - minutes) * 60 * 100)
    return (TiffImagePlugin.IFDRational(deg, 1), TiffImagePlugin.IFDRational(minutes, 1),
            TiffImagePlugin.IFDRational(seconds, 100))


def sample(name: str) -> Image.Image:
    """A scikit-image sample photo as an RGB PIL image."""
    from skimage import data

    arr = getattr(data, name)()
    img = Image.fromarray(arr)
    return img.convert("RGB")


def write_photo(path: Path, image: Image.Image, taken: str | None = None, offset: str | None = None,
                make: str | None = None, model: str | None = None, lens: str | None = None,
                gps: tuple[float, float] | None = None, altitude: float | None = None,
                iso: int | None = None, exposure: tuple[int, int] | None = None,
                focal: float | None = None, f_number: float | None = None) -> Path:
    """Save ``image`` as a JPEG at ``path`` with the EXIF fields given (none: no EXIF at all)."""
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    sub = exif.get_ifd(0x8769)
    if taken:
        sub[0x9003] = taken
    if offset:
        sub[0x9011] = offset
    if lens:
        sub[0xA434] = lens
    if iso:
        sub[0x8827] = iso
    if exposure:
        sub[0x829A] = TiffImagePlugin.IFDRational(*exposure)
    if focal:
        sub[0x920A] = TiffImagePlugin.IFDRational(int(focal * 10), 10)
    if f_number:
        sub[0x829D] = TiffImagePlugin.IFDRational(int(f_number * 10), 10)
    if gps:
        g = exif.get_ifd(0x8825)
        g[1], g[2] = ("N" if gps[0] >= 0 else "S"), _dms(gps[0])
        g[3], g[4] = ("E" if gps[1] >= 0 else "W"), _dms(gps[1])
        if altitude is not None:
            g[5], g[6] = (0 if altitude >= 0 else 1), TiffImagePlugin.IFDRational(int(abs(altitude) * 10), 10)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=90, exif=exif.tobytes() if len(exif) or sub else b"")
    return path
