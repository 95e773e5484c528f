"""The scorer's memory of recent transaction ids: asked a batch at a time, forgotten a generation at a time."""

from __future__ import annotations

import numpy as np

from fraudops.features.definition import MS_PER_DAY
from fraudops.features.online import _RecentIds


def _add(recent: _RecentIds, ids: list[str], first_ms: int, step_ms: int = 1) -> None:
    times = np.arange(len(ids), dtype=np.int64) * step_ms + first_ms
    recent.add(ids, np.arange(len(ids), dtype=np.int64) + 100, times)


def test_known_ids_are_found_across_generations_and_forgotten_with_theirs() -> None:
    recent = _RecentIds()
    _add(recent, ["a", "b"], 1_000)
    recent.forget(0)  # nothing is that old: a new generation starts
    _add(recent, ["c"], 5 * MS_PER_DAY)
    assert recent.known(["a", "c", "x"]) == {"a", "c"}
    assert recent.get("b") == 101
    recent.forget(2_000)
    assert recent.known(["a", "b", "c"]) == {"c"}
    assert recent.get("a") is None
    assert len(recent) == 1


def test_an_id_applied_again_later_stays_until_its_last_generation_goes() -> None:
    recent = _RecentIds()
    _add(recent, ["a", "b"], 1_000)
    recent.forget(0)
    _add(recent, ["a"], 3 * MS_PER_DAY)  # a repeat, in a newer generation
    recent.forget(2_000)  # drops the first generation only
    assert recent.known(["a", "b"]) == {"a"}
    recent.forget(4 * MS_PER_DAY)
    assert recent.known(["a"]) == set()
    assert len(recent) == 0


def test_repeats_inside_one_generation_and_one_batch_are_forgotten_together() -> None:
    recent = _RecentIds()
    _add(recent, ["a", "a", "b"], 1_000)
    _add(recent, ["b"], 2_000)
    recent.forget(3_000)
    assert recent.known(["a", "b"]) == set()
    assert len(recent) == 0


def test_a_batch_spanning_days_is_forgotten_day_by_day() -> None:
    recent = _RecentIds()
    _add(recent, ["d0", "d1", "d2", "d3"], 0, step_ms=MS_PER_DAY)
    recent.forget(MS_PER_DAY)  # d0 and d1 are at or before the horizon
    assert recent.known(["d0", "d1", "d2", "d3"]) == {"d2", "d3"}
