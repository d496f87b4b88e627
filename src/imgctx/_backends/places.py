"""An offline reverse geocoder: GPS latitude/longitude -> city, region, country.

It wraps the ``reverse_geocoder`` package, which ships GeoNames' places of at least 1000
inhabitants (about 150,000 of them) and finds the nearest with a k-d tree. Loading its data takes
about two seconds, so it is loaded on the first position asked for, once per geocoder, and
never for a collection without GPS. Answers are kept per position rounded to ``PLACE_DIGITS``
decimals (about 11 m; photos of one walk or burst share them), at most ``CACHE_SIZE`` of them, so
a folder taken in a few places asks the tree once per place. Country names come from the ISO
3166 table in ``data/countries.txt``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from imgctx._errors import MissingDependencyError

log = logging.getLogger(__name__)
_DATA = Path(__file__).with_name("data") / "countries.txt"
#: Positions are looked up (and remembered) rounded to this many decimal degrees.
PLACE_DIGITS = 4
CACHE_SIZE = 4096
Place = tuple[str | None, str | None, str | None]


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
        self._cache: OrderedDict[tuple[float, float], Place] = OrderedDict()
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

    def places(self, points: Sequence[tuple[float, float]]) -> list[Place]:
        """(city, region, country) for each (latitude, longitude)."""
        keys = [(round(float(a), PLACE_DIGITS), round(float(b), PLACE_DIGITS)) for a, b in points]
        with self._lock:
            known = {k: self._cache[k] for k in keys if k in self._cache}
        new = list(dict.fromkeys(k for k in keys if k not in known))
        if new:
            names = country_names()
            found = self._load().query(new)
            with self._lock:
                for k, p in zip(new, found, strict=True):
                    known[k] = self._cache[k] = (
                        p.get("name") or None, p.get("admin1") or None, names.get(p.get("cc", ""), p.get("cc") or None))
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return [known[k] for k in keys]
