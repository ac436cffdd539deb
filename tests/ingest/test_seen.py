"""SeenNumbers, the duplicate check's memory: the same answers as a Python set, in 8 bytes a number."""

from __future__ import annotations

import numpy as np

from campaigns.ingest.seen import SeenNumbers


def test_first_time_is_a_sets_answer_chunk_after_chunk():
    # given chunks of random numbers, many repeated within and across chunks
    rng = np.random.default_rng(20261207)
    seen, reference = SeenNumbers(), set()
    for size in [1, 7, 1000, 50, 5000, 3, 20000, 999, 0, 4096]:
        keys = rng.integers(256_700_000_000, 256_700_030_000, size=size, dtype=np.int64)
        # when each is asked in file order, then the first occurrence of each new number alone is first-time
        expected = []
        for key in keys.tolist():
            expected.append(key not in reference)
            reference.add(key)
        assert seen.first_time(keys).tolist() == expected
    assert len(seen) == len(reference)
    # and the levels stay few: each about twice the next
    assert len(seen._levels) <= 8


def test_it_starts_from_numbers_already_written():
    seen = SeenNumbers(np.array([5, 3, 5, 9], dtype=np.int64))
    assert seen.contains(np.array([3, 4, 5, 9, 10], dtype=np.int64)).tolist() == [True, False, True, True, False]
    assert SeenNumbers().contains(np.array([1], dtype=np.int64)).tolist() == [False]
