"""The recipients an ingest has kept so far, for "a number seen earlier in the file is a duplicate".

A Python set of ten million ints takes over half a gigabyte; these are int64 keys (E.164 digits fit one) in
a few sorted numpy arrays, 8 bytes each: a log-structured merge, as databases do it. Adding a chunk's keys
makes a new sorted level; two levels of about the same size are merged into one, so there are never more
than about log2(n / chunk) levels, and each key is merged about that many times.
"""

from __future__ import annotations

import numpy as np


class SeenNumbers:
    """A growing set of int64 keys, asked and added to a whole chunk at a time."""

    def __init__(self, keys: np.ndarray | None = None):
        self._levels: list[np.ndarray] = []
        if keys is not None and len(keys):
            self._levels.append(np.unique(np.asarray(keys, dtype=np.int64)))

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """For each key, whether it was added before."""
        found = np.zeros(len(keys), dtype=bool)
        for level in self._levels:
            at = np.searchsorted(level, keys)
            at[at == len(level)] = len(level) - 1
            found |= level[at] == keys
        return found

    def add(self, keys: np.ndarray) -> None:
        """Add keys none of which was added before (callers ask `contains` first)."""
        level = np.sort(np.asarray(keys, dtype=np.int64))
        if not len(level):
            return
        while self._levels and len(self._levels[-1]) <= 2 * len(level):
            level = np.concatenate((self._levels.pop(), level))
            level.sort(kind="mergesort")  # two sorted runs: a merge
        self._levels.append(level)

    def first_time(self, keys: np.ndarray) -> np.ndarray:
        """For keys in file order: which are seen for the first time (not added before, and not earlier in
        `keys`); those are added."""
        keys = np.asarray(keys, dtype=np.int64)
        new = ~self.contains(keys)
        fresh = np.zeros(len(keys), dtype=bool)
        candidates = np.flatnonzero(new)
        if len(candidates):
            unique, first = np.unique(keys[candidates], return_index=True)
            fresh[candidates[first]] = True
            self.add(unique)
        return fresh
