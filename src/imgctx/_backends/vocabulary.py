"""The zero-shot tagger's shipped vocabulary: common object nouns with coarse parents.

``data/clip_vocabulary.txt`` has one ``noun: parent, parent`` line per noun (parents listed in
full, most specific first: ``kitten: cat, pet, animal``). Every noun is a prompt; every parent is
a coarse noun whose score is the summed probability of its own prompt (when it is a noun too)
and of the nouns listing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class VocabularyEntry:
    noun: str
    parents: tuple[str, ...]


@lru_cache(maxsize=1)
def load_vocabulary() -> tuple[VocabularyEntry, ...]:
    text = resources.files("imgctx._backends").joinpath("data/clip_vocabulary.txt").read_text(encoding="utf-8")
    entries: list[VocabularyEntry] = []
    seen: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        noun, _, rest = line.partition(":")
        noun = noun.strip().lower()
        if noun in seen:
            raise ValueError(f"clip_vocabulary.txt lists {noun!r} twice")
        seen.add(noun)
        parents = tuple(p.strip().lower() for p in rest.split(",") if p.strip() and p.strip().lower() != noun)
        entries.append(VocabularyEntry(noun, parents))
    return tuple(entries)
