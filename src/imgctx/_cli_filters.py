"""The photo filters on the command line: ``--taken-after 2020-01-01``, ``--camera``,
``--place``, ``--has-text``, ``--has-people``, ``--text-contains``, ``--colors`` (for ``search``,
``similar`` and ``list``), collected into one ``filters`` keyword for the library."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from imgctx._filters import FILTER_NAMES

_OPTIONS = (
    click.option("--taken-after", metavar="DATE", help="Only photos taken on or after DATE (2020-01-31 or 2020-01-31T18:30, camera clock)."),
    click.option("--taken-before", metavar="DATE", help="Only photos taken before DATE."),
    click.option("--camera", help="Only photos whose camera make or model contains this (case-insensitive)."),
    click.option("--place", help="Only photos whose place (city, region, country) contains this."),
    click.option("--has-text/--no-text", "has_text", default=None, help="Only images with (or without) text read in them."),
    click.option("--has-people/--no-people", "has_people", default=None, help="Only images with (or without) people seen."),
    click.option("--text-contains", help="Only images whose text read in them contains this."),
    click.option("--colors", help="Only images with any of these dominant colours (comma-separated)."),
)


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the filter options to a command; it receives them as one ``filters`` dict (only the
    options given)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        filters = {name: kwargs.pop(name) for name in FILTER_NAMES if kwargs.get(name) is not None}
        for name in FILTER_NAMES:
            kwargs.pop(name, None)
        return f(*args, filters=filters, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper
