"""The C table of recent transaction ids answers as a dict of id -> (last key, latest time) would."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fraudops.features._id_table import IdTable
from fraudops.features.definition import MS_PER_DAY


def _add(table: IdTable, ids: list[str], keys: list[int], times: list[int]) -> None:
    table.add(ids, np.asarray(keys, dtype=np.int64), np.asarray(times, dtype=np.int64))


def test_it_follows_a_dict_through_adds_repeats_and_forgetting() -> None:
    """Enough ids to grow the table several times, ids added again (in one batch and across batches), and
    forgetting that leaves tombstones to step over, reuse and clear."""
    rng = random.Random(3)
    table, reference = IdTable(), dict[str, tuple[int, int]]()
    for step in range(60):
        ids = [f"tx-{rng.randrange(30_000)}" for _ in range(rng.randrange(1, 2_000))]
        keys = [rng.randrange(-(2**62), 2**62) for _ in ids]
        times = [step * 10 + rng.randrange(30) for _ in ids]
        _add(table, ids, keys, times)
        for transaction_id, key, time in zip(ids, keys, times, strict=True):
            _, latest = reference.get(transaction_id, (0, time))
            reference[transaction_id] = (key, max(latest, time))
        if step % 7 == 6:
            horizon = step * 10 - 40
            dropped = table.forget(horizon)
            gone = [transaction_id for transaction_id, (_, time) in reference.items() if time <= horizon]
            assert dropped == len(gone)
            for transaction_id in gone:
                del reference[transaction_id]
        assert len(table) == len(reference)
        asked = [f"tx-{i}" for i in range(30_000)]
        rows, keys_found = table.find(asked)
        assert {asked[row]: key for row, key in zip(rows, keys_found, strict=True)} == {
            transaction_id: key for transaction_id, (key, _) in reference.items()
        }


def test_an_id_applied_again_later_stays_until_its_latest_time_goes() -> None:
    table = IdTable()
    _add(table, ["a", "b"], [100, 101], [1_000, 1_001])
    _add(table, ["a"], [102], [3 * MS_PER_DAY])  # a repeat, with another terminal key
    assert table.forget(2_000) == 1
    assert table.find(["a", "b"]) == ([0], [102])
    assert table.forget(3 * MS_PER_DAY) == 1
    assert len(table) == 0


def test_a_batch_spanning_days_is_forgotten_row_by_row() -> None:
    table = IdTable()
    days = [0, MS_PER_DAY, 2 * MS_PER_DAY, 3 * MS_PER_DAY]
    _add(table, ["d0", "d1", "d2", "d3", "d0"], [1, 2, 3, 4, 5], [*days, 0])  # d0 twice in one batch
    table.forget(MS_PER_DAY)
    assert table.find(["d0", "d1", "d2", "d3"]) == ([2, 3], [3, 4])


def test_ids_are_compared_by_value_not_identity_nor_type() -> None:
    table = IdTable()
    _add(table, ["".join(["tx", "-1"])], [7], [1])
    assert table.find(["tx-" + "1", "tx-2"]) == ([0], [7])
    assert table.find(list(np.array(["tx-1"]))) == ([0], [7])  # numpy's str subclass


def test_forgetting_everything_shrinks_the_table_back() -> None:
    table = IdTable()
    ids = [f"id{i}" for i in range(100_000)]
    _add(table, ids, list(range(len(ids))), [5] * len(ids))
    grown = table.nbytes
    assert table.forget(5) == len(ids)
    assert len(table) == 0
    assert table.nbytes < grown / 50
    assert table.find(ids) == ([], [])


def test_bad_arguments_are_refused() -> None:
    table = IdTable()
    with pytest.raises(TypeError, match="str"):
        _add(table, [b"tx-1"], [1], [1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="one key and one time per id"):
        _add(table, ["tx-1", "tx-2"], [1], [1, 2])
    with pytest.raises(TypeError, match="no arguments"):
        IdTable(3)  # type: ignore[call-arg]
    assert len(table) == 0
