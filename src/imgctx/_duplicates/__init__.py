"""Exact and near-duplicate detection, one job per module:

- :mod:`.similarity`: the combined similarity of two images (hash distances and the image-vector
  cosine on one scale) and the checks of thresholds and keep policies;
- :mod:`.grouping`: candidate pairs without an n x n matrix, union-find, keep policies;
- :mod:`.removal`: what a removal removes, and the rules that keep it from losing a photo;
- :mod:`.finder`: the Extractor's duplicate methods over its models and store.

See docs/duplicates.md for the similarity, its constants and how they were chosen.
"""

from imgctx._duplicates.finder import Duplicates
from imgctx._duplicates.similarity import DEFAULT_THRESHOLD, KEEP_POLICIES, REMOVE_THRESHOLD

__all__ = ["DEFAULT_THRESHOLD", "KEEP_POLICIES", "REMOVE_THRESHOLD", "Duplicates"]
