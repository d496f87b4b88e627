"""Combined queries, as rclip users know them: weighted text and image terms added and
subtracted (``"horse" + "stripes"``, ``2 * "golden retriever" + pool.jpg``, ``- "people"``).

A term is a quoted text, or bare words (an unquoted run of words), or a bare word ending in an
image extension, which is an image file. ``+`` and ``-`` standing alone (spaces around them)
join terms; ``N *`` before a term weights it. The query's vector in each space is the weighted
sum of its terms' vectors there, normalised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgctx._errors import ConfigurationError
from imgctx._images import is_image_name
from imgctx._paths import expand

_TOKEN = re.compile(r'"[^"]*"|\'[^\']*\'|\S+')
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")

Term = tuple[float, Any]  # (weight, text | os.PathLike | PIL image)


def parse_mixed_query(query: str) -> list[tuple[float, str | Path]]:
    """``'2 * "golden retriever" + pool.jpg - "people"'`` -> ``[(2.0, "golden retriever"),
    (1.0, Path("pool.jpg")), (-1.0, "people")]``. A bare word ending in an image extension is a
    ``Path`` (``~`` and ``$VARS`` expanded); everything else is text. ConfigurationError for an
    empty query or a dangling operator."""
    if not isinstance(query, str):
        raise TypeError(f"a combined query is a string, not {type(query).__name__}")
    tokens = _TOKEN.findall(query)
    terms: list[tuple[float, str | Path]] = []
    sign, weight, words = 1.0, 1.0, []
    expecting = False  # an operator or a weight was given: a term must follow

    def flush() -> None:
        nonlocal sign, weight, words, expecting
        if words:
            text = " ".join(words)
            value: str | Path = expand(text) if len(words) == 1 and is_image_name(text) else text
            terms.append((sign * weight, value))
            sign, weight, words, expecting = 1.0, 1.0, [], False

    k = 0
    while k < len(tokens):
        tok = tokens[k]
        if tok in ("+", "-"):
            flush()
            if expecting:
                raise ConfigurationError(f"the combined query has an operator without a term: {query!r}")
            sign, expecting = (1.0 if tok == "+" else -1.0), True
        elif _NUMBER.match(tok) and k + 1 < len(tokens) and tokens[k + 1] == "*":
            flush()
            weight, expecting = float(tok), True
            k += 1
        elif tok[0] in "\"'" and tok[-1] == tok[0] and len(tok) >= 2:
            flush()
            if not tok[1:-1].strip():
                raise ConfigurationError(f"the combined query has an empty quoted term: {query!r}")
            words = [tok[1:-1].strip()]
            flush()
        else:
            words.append(tok)
        k += 1
    flush()
    if expecting:
        raise ConfigurationError(f"the combined query ends with an operator: {query!r}")
    if not terms:
        raise ConfigurationError("the combined query is empty")
    return terms


def combine(parts: Sequence[tuple[float, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """Per space, the normalised weighted sum of the terms' vectors (spaces whose sum vanishes
    are left out)."""
    sums: dict[str, np.ndarray] = {}
    for weight, vectors in parts:
        for space, vec in vectors.items():
            v = np.asarray(vec, np.float32) * np.float32(weight)
            sums[space] = sums[space] + v if space in sums else v
    out = {}
    for space, vec in sums.items():
        norm = float(np.linalg.norm(vec))
        if norm > 1e-6:
            out[space] = (vec / norm).astype(np.float32)
    return out


def is_image_term(value: Any) -> bool:
    return not isinstance(value, str) and (isinstance(value, os.PathLike) or hasattr(value, "getpixel"))
