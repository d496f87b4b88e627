"""Why a search hit matched: the query's words found in its tags and caption.

Words are compared lower-cased, with a plural ``s``/``es`` dropped (``cats`` matches ``cat``);
short function words (``a``, ``of``, ``the``, ...) never count as a match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
STOPWORDS = frozenset(
    "a an and are as at be by for from in into is it its of on or photo picture image the this to "
    "with without".split()
)


def stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ies", "es", "s"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return w[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return w


def words(text: str) -> list[str]:
    """The content words of a text, lower-cased, in order, each once."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(text) if w.lower() not in STOPWORDS))


def matched_labels(query: str, labels: Iterable[str]) -> tuple[str, ...]:
    """The labels (tags, possibly several words: "tiger cat") that share a word with the query."""
    wanted = {stem(w) for w in words(query)}
    return tuple(label for label in dict.fromkeys(labels) if wanted & {stem(w) for w in words(label)})


def matched_words(query: str, text: str) -> tuple[str, ...]:
    """The words of ``text`` (a caption) that are words of the query."""
    wanted = {stem(w) for w in words(query)}
    return tuple(w for w in words(text) if stem(w) in wanted)


def explanation(score: float, scores: Mapping[str, float], query: str | None, tags: tuple[str, ...],
                caption_words: tuple[str, ...]) -> str:
    """One line: the score, each space's part, and what matched."""
    parts = ", ".join(f"{space} {value:.3f}" for space, value in sorted(scores.items()))
    line = f"score {score:.3f}"
    if len(scores) > 1:
        line += f" = weighted mean of {parts}"
    elif scores:
        line += f" ({parts})"
    if query is None:
        return line + "; image similarity"
    line += f"; tags matched: {', '.join(tags) if tags else 'none'}"
    line += f"; caption words matched: {', '.join(caption_words) if caption_words else 'none'}"
    return line
