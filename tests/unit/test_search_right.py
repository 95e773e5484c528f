"""The galloping search of the online store answers exactly as np.searchsorted(side="right")."""

from __future__ import annotations

import numpy as np
import pytest

from fraudops.features._search import search_right


def _search(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    out = np.empty(needles.shape, dtype=np.int64)
    search_right(haystack, np.ascontiguousarray(needles), out)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_it_answers_as_numpy_whatever_the_needles_order(seed: int) -> None:
    """Repeated keys, needles below, between, on and above them, rising, falling and shuffled, in rows."""
    rng = np.random.default_rng(seed)
    size = int(rng.choice([0, 1, 2, 7, 1_000, 50_000]))
    haystack = np.sort(rng.integers(-50, 50, size) * int(rng.choice([1, 10**15])))
    needles = rng.integers(-60, 60, (300, 5)) * (10**15 if abs(haystack).max(initial=0) > 100 else 1)
    for order in (np.sort(needles, axis=None).reshape(needles.shape), needles, np.sort(needles, axis=None)[::-1]):
        np.testing.assert_array_equal(_search(haystack, order), np.searchsorted(haystack, order, side="right"))


def test_extremes_of_int64() -> None:
    extremes = np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max], dtype=np.int64)
    haystack = np.sort(np.repeat(extremes, 3))
    np.testing.assert_array_equal(_search(haystack, extremes), np.searchsorted(haystack, extremes, side="right"))


def test_bad_buffers_are_refused() -> None:
    with pytest.raises(ValueError, match="as long as"):
        search_right(np.arange(3), np.arange(2), np.empty(3, dtype=np.int64))
