"""Helpers every built-in store shares: filter normalisation and the space-compatibility check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from imgctx.errors import IncompatibleIndexError
from imgctx.types import SpaceSpec


def normalise_objects(objects: Sequence[str] | str | None) -> list[str] | None:
    """'Cat, dog' or ['Cat', ' dog'] -> ['cat', 'dog']; empty or None -> None (no filter)."""
    if objects is None:
        return None
    if isinstance(objects, str):
        objects = objects.split(",")
    cleaned = sorted({o.strip().lower() for o in objects if o and o.strip()})
    return cleaned or None


def check_spaces(
    recorded: Mapping[str, SpaceSpec], wanted: Sequence[SpaceSpec], where: str, dims: bool = True
) -> None:
    """Refuse to mix vector spaces: every wanted space must match the recorded one exactly
    (model names, and with ``dims`` also dimensions)."""
    if not recorded:
        return

    def key(s: SpaceSpec) -> tuple[str, int]:
        return (s.model, s.dim if dims else 0)

    def show(s: SpaceSpec) -> str:
        return f"{s.name}={s.model}/{s.dim}d" if dims else f"{s.name}={s.model}"

    want = {s.name: s for s in wanted}
    if set(want) != set(recorded) or any(key(want[n]) != key(recorded[n]) for n in want):
        have = ", ".join(show(s) for s in recorded.values())
        asked = ", ".join(show(s) for s in wanted)
        raise IncompatibleIndexError(
            f"{where} was built with {have}, but the configured models give {asked}; "
            "use the preset that built it, or another db path/collection"
        )
