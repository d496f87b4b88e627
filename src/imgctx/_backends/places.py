"""An offline reverse geocoder: GPS latitude/longitude -> city, region, country.

It wraps the ``reverse_geocoder`` package, which ships GeoNames' places of at least 1000
inhabitants (about 150,000 of them) and finds the nearest with a k-d tree. Loading its data takes
about two seconds, so it is loaded on the first position asked for, once per geocoder, and
never for a collection without GPS. Country names come from the ISO 3166 table in
``data/countries.txt``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from imgctx._errors import MissingDependencyError

log = logging.getLogger(__name__)
_DATA = Path(__file__).with_name("data") / "countries.txt"


@cache
def country_names() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code -> common English name (read-only data, read once)."""
    out = {}
    for line in _DATA.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, name = line.split("\t", 1)
            out[code] = name
    return out


class ReverseGeocoder:
    """Nearest named place for GPS positions; thread-safe, loads its data on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._geocoder: Any = None
        self.load_time: float | None = None

    @property
    def loaded(self) -> bool:
        return self._geocoder is not None

    @staticmethod
    def check_installed() -> None:
        """Raise MissingDependencyError now if the package is missing (without loading its data)."""
        import importlib.util

        if importlib.util.find_spec("reverse_geocoder") is None:
            raise MissingDependencyError("place names from GPS", "offline")

    def _load(self) -> Any:
        with self._lock:
            if self._geocoder is None:
                try:
                    import reverse_geocoder
                except ImportError:
                    raise MissingDependencyError("place names from GPS", "offline") from None
                import time

                start = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):  # it prints a loading banner
                    self._geocoder = reverse_geocoder.RGeocoder(mode=1, verbose=False)
                self.load_time = time.perf_counter() - start
                log.info("reverse geocoder loaded in %.2fs", self.load_time)
            return self._geocoder

    def places(self, points: Sequence[tuple[float, float]]) -> list[tuple[str | None, str | None, str | None]]:
        """(city, region, country) for each (latitude, longitude)."""
        if not points:
            return []
        found = self._load().query([(float(a), float(b)) for a, b in points])
        names = country_names()
        return [
            (p.get("name") or None, p.get("admin1") or None, names.get(p.get("cc", ""), p.get("cc") or None))
            for p in found
        ]
