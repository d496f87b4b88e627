"""``tags-caption``: a caption composed from the image's object tags, not by a caption model.

The offline preset has no captioning model (none ships inside a PyPI package), so this names
what it does: "a photo of a cat: egyptian cat, tabby". With no tags it says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgctx._hookspecs import hookimpl
from imgctx._settings import Settings
from imgctx._types import Tag


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def compose_caption(tags: Sequence[Tag]) -> str:
    """'a photo of a <coarse noun>: <fine labels>' from tags, best first."""
    fine = [t.label for t in tags if not t.coarse and t.confident]
    coarse = [t.label for t in tags if t.coarse and t.confident]
    if not fine and not coarse:
        return "a photo with no recognised objects"
    people = [c for c in ("people", "person") if c in coarse]  # from a people detector, if one ran
    head = people[0] if people else coarse[0] if coarse else fine[0]
    detail = [f for f in fine if f != head]
    caption = f"a photo of {'' if head == 'people' else _article(head) + ' '}{head}"
    return f"{caption}: {', '.join(detail)}" if detail else caption


class TagsCaptioner:
    """Captions composed from tags; needs no weights, so it is always loaded."""

    name = "tags-caption"
    from_tags = True  # the caption says nothing the tags don't: leave it out of the text vector
    loaded = True
    load_time = 0.0
    device = "cpu"

    def load(self) -> None:
        return None

    def caption(self, images: Sequence[Any], tags: Sequence[Sequence[Tag]] | None = None) -> list[str]:
        if tags is None:
            tags = [[] for _ in images]
        return [compose_caption(t) for t in tags]


def tags_caption_factory(settings: Settings) -> TagsCaptioner:
    return TagsCaptioner()


@hookimpl
def register_captioners(register: Any) -> None:
    register("tags-caption", tags_caption_factory)
